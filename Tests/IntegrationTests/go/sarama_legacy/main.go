// sarama_legacy: Debian's sarama 1.22 speaking the protocol versions of its old defaults, driven by
// Tests/IntegrationTests/test_legacy_clients.py. Built offline in GOPATH mode.
//
//	-mode produce  : the seed tutorials' sync producer as written (sarama.NewConfig(), no Version:
//	                 Kafka 0.8.2, Produce v0 with magic-0 message sets); -compression none|gzip|snappy
//	-mode consume  : a partition consumer with the default Version (Fetch v0, ListOffsets v0)
//	-mode group    : a ConsumerGroup at -version 0.10.2.0 (JoinGroup v1, Fetch v3, OffsetCommit v2)
//	-mode commit09 : an OffsetManager at Version 0.9.0.0 (OffsetCommit v1 / OffsetFetch v1)
//
// Output: one JSON object per line ({"partition":P,"offset":O,"key":"...","value":"..."}) then
// {"done":N}. Exit code 1 on any error, 2 on timeout.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/Shopify/sarama"
)

func emit(v map[string]interface{}) {
	b, _ := json.Marshal(v)
	os.Stdout.Write(append(b, '\n'))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "error:", err)
	os.Exit(1)
}

type handler struct {
	want  int
	got   int
	done  chan struct{}
}

func (h *handler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *handler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h *handler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for m := range c.Messages() {
		emit(map[string]interface{}{"partition": m.Partition, "offset": m.Offset, "key": string(m.Key), "value": string(m.Value)})
		s.MarkMessage(m, "")
		h.got++
		if h.got == h.want {
			close(h.done)
			return nil
		}
	}
	return nil
}

func main() {
	bootstrap := flag.String("bootstrap", "127.0.0.1:9092", "broker")
	topic := flag.String("topic", "", "topic")
	mode := flag.String("mode", "produce", "produce|consume|group|commit09")
	count := flag.Int("count", 10, "messages")
	compression := flag.String("compression", "none", "none|gzip|snappy")
	version := flag.String("version", "", "sarama Version (empty: the default)")
	group := flag.String("group", "legacy", "group id")
	timeout := flag.Duration("timeout", 60*time.Second, "give up after")
	flag.Parse()
	go func() {
		time.Sleep(*timeout)
		fmt.Fprintln(os.Stderr, "timeout")
		os.Exit(2)
	}()
	brokers := strings.Split(*bootstrap, ",")

	config := sarama.NewConfig()
	if *version != "" {
		v, err := sarama.ParseKafkaVersion(*version)
		if err != nil {
			fail(err)
		}
		config.Version = v
	}

	switch *mode {
	case "produce":
		// The seed tutorials' sync producer.
		config.Producer.RequiredAcks = sarama.WaitForAll
		config.Producer.Retry.Max = 5
		config.Producer.Return.Successes = true
		switch *compression {
		case "gzip":
			config.Producer.Compression = sarama.CompressionGZIP
		case "snappy":
			config.Producer.Compression = sarama.CompressionSnappy
		}
		producer, err := sarama.NewSyncProducer(brokers, config)
		if err != nil {
			fail(err)
		}
		if *compression == "none" {
			for i := 0; i < *count; i++ {
				msg := &sarama.ProducerMessage{Topic: *topic, Key: sarama.StringEncoder(fmt.Sprintf("k%d", i)), Value: sarama.StringEncoder(fmt.Sprintf("v%d", i))}
				partition, offset, err := producer.SendMessage(msg)
				if err != nil {
					fail(err)
				}
				emit(map[string]interface{}{"partition": partition, "offset": offset, "key": fmt.Sprintf("k%d", i)})
			}
		} else {
			// One call with many messages, so they share a compressed wrapper message.
			msgs := []*sarama.ProducerMessage{}
			for i := 0; i < *count; i++ {
				msgs = append(msgs, &sarama.ProducerMessage{Topic: *topic, Partition: 0, Key: sarama.StringEncoder(fmt.Sprintf("k%d", i)), Value: sarama.StringEncoder(fmt.Sprintf("v%d", i))})
			}
			if err := producer.SendMessages(msgs); err != nil {
				fail(err)
			}
			for i, m := range msgs {
				emit(map[string]interface{}{"partition": m.Partition, "offset": m.Offset, "key": fmt.Sprintf("k%d", i)})
			}
		}
		if err := producer.Close(); err != nil {
			fail(err)
		}
	case "consume":
		consumer, err := sarama.NewConsumer(brokers, config)
		if err != nil {
			fail(err)
		}
		pc, err := consumer.ConsumePartition(*topic, 0, sarama.OffsetOldest)
		if err != nil {
			fail(err)
		}
		for i := 0; i < *count; i++ {
			select {
			case m := <-pc.Messages():
				emit(map[string]interface{}{"partition": m.Partition, "offset": m.Offset, "key": string(m.Key), "value": string(m.Value)})
			case err := <-pc.Errors():
				fail(err)
			}
		}
		pc.Close()
		consumer.Close()
	case "group":
		config.Consumer.Offsets.Initial = sarama.OffsetOldest
		cg, err := sarama.NewConsumerGroup(brokers, *group, config)
		if err != nil {
			fail(err)
		}
		h := &handler{want: *count, done: make(chan struct{})}
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			for err := range cg.Errors() {
				fmt.Fprintln(os.Stderr, "group error:", err)
			}
		}()
		go func() {
			for ctx.Err() == nil {
				if err := cg.Consume(ctx, []string{*topic}, h); err != nil && ctx.Err() == nil {
					fail(err)
				}
			}
		}()
		<-h.done
		cancel()
		if err := cg.Close(); err != nil {
			fail(err)
		}
	case "commit09":
		client, err := sarama.NewClient(brokers, config)
		if err != nil {
			fail(err)
		}
		om, err := sarama.NewOffsetManagerFromClient(*group, client)
		if err != nil {
			fail(err)
		}
		pom, err := om.ManagePartition(*topic, 0)
		if err != nil {
			fail(err)
		}
		before, _ := pom.NextOffset()
		pom.MarkOffset(int64(*count), "")
		pom.Close()
		if err := om.Close(); err != nil {
			fail(err)
		}
		om2, _ := sarama.NewOffsetManagerFromClient(*group, client)
		pom2, err := om2.ManagePartition(*topic, 0)
		if err != nil {
			fail(err)
		}
		after, _ := pom2.NextOffset()
		emit(map[string]interface{}{"before": before, "after": after})
		pom2.Close()
		om2.Close()
		client.Close()
	default:
		fail(fmt.Errorf("unknown mode %s", *mode))
	}
	emit(map[string]interface{}{"done": *count})
}
