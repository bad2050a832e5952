// sarama_sasl: Debian's sarama 1.22 with Net.SASL PLAIN or, built with -tags scram, SCRAM-SHA-256/512
// (scram.go; sarama needs version >= 1.0.0 for SCRAM) (and optionally Net.TLS), driven by
// Tests/IntegrationTests/test_security_sasl_tls.py. Built offline in GOPATH mode.
//
// With no -version sarama uses its old default (Kafka 0.8.2): SaslHandshake v0 and the legacy
// unframed PLAIN token; -version 1.0.0 uses SaslHandshake v1 + SaslAuthenticate.
// Produces -n messages with a SyncProducer, reads them back with a partition consumer, prints
// {"done":N}. Exit code 1 on any error, 2 on timeout.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io/ioutil"
	"os"
	"time"

	"github.com/Shopify/sarama"
)

// Set by scram.go (-tags scram): sarama 1.22 leaves the SCRAM client to the application.
var scramGenerator func(mechanism string) func() sarama.SCRAMClient

func fail(err error) {
	fmt.Fprintln(os.Stderr, "error:", err)
	os.Exit(1)
}

func main() {
	bootstrap := flag.String("bootstrap", "127.0.0.1:9092", "broker")
	topic := flag.String("topic", "", "topic")
	user := flag.String("user", "", "SASL/PLAIN user")
	password := flag.String("password", "", "SASL/PLAIN password")
	version := flag.String("version", "", "Kafka version for sarama (empty: sarama's default)")
	ca := flag.String("ca", "", "CA PEM file: use TLS")
	mechanism := flag.String("mechanism", sarama.SASLTypePlaintext, "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
	n := flag.Int("n", 10, "messages")
	flag.Parse()

	cfg := sarama.NewConfig()
	if *version != "" {
		v, err := sarama.ParseKafkaVersion(*version)
		if err != nil {
			fail(err)
		}
		cfg.Version = v
	}
	cfg.Net.SASL.Enable = true
	cfg.Net.SASL.Mechanism = sarama.SASLMechanism(*mechanism)
	if *mechanism != sarama.SASLTypePlaintext {
		if scramGenerator == nil {
			fail(fmt.Errorf("%s needs the scram build tag", *mechanism))
		}
		cfg.Net.SASL.SCRAMClientGeneratorFunc = scramGenerator(*mechanism)
	}
	cfg.Net.SASL.User = *user
	cfg.Net.SASL.Password = *password
	cfg.Net.SASL.Handshake = true
	if *ca != "" {
		pem, err := ioutil.ReadFile(*ca)
		if err != nil {
			fail(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		cfg.Net.TLS.Enable = true
		cfg.Net.TLS.Config = &tls.Config{RootCAs: pool, ServerName: "localhost"}
	}
	cfg.Producer.Return.Successes = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Metadata.Retry.Max = 10
	cfg.Metadata.Retry.Backoff = 200 * time.Millisecond

	producer, err := sarama.NewSyncProducer([]string{*bootstrap}, cfg)
	if err != nil {
		fail(err)
	}
	for i := 0; i < *n; i++ {
		if _, _, err := producer.SendMessage(&sarama.ProducerMessage{Topic: *topic, Value: sarama.StringEncoder(fmt.Sprintf("sasl-%d", i))}); err != nil {
			fail(err)
		}
	}
	producer.Close()

	consumer, err := sarama.NewConsumer([]string{*bootstrap}, cfg)
	if err != nil {
		fail(err)
	}
	pc, err := consumer.ConsumePartition(*topic, 0, sarama.OffsetOldest)
	if err != nil {
		fail(err)
	}
	got := 0
	timeout := time.After(40 * time.Second)
	for got < *n {
		select {
		case m := <-pc.Messages():
			if string(m.Value) != fmt.Sprintf("sasl-%d", got) {
				fail(fmt.Errorf("message %d is %q", got, m.Value))
			}
			got++
		case err := <-pc.Errors():
			fail(err)
		case <-timeout:
			fmt.Fprintln(os.Stderr, "timeout after", got)
			os.Exit(2)
		}
	}
	pc.Close()
	consumer.Close()
	b, _ := json.Marshal(map[string]int{"done": got})
	fmt.Println(string(b))
}
