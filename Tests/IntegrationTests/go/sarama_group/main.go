// sarama_group: a Sarama ConsumerGroup member driven by Petrel's integration suite
// (Tests/IntegrationTests/test_groups_sarama.py).
//
// It joins GROUP, consumes TOPIC and prints one JSON object per line on stdout:
//
//	{"event":"setup","member":"...","generation":N,"claims":[0,2]}    after every (re)join
//	{"event":"msg","partition":P,"offset":O,"value":"..."}            for every message (marked for commit)
//	{"event":"cleanup","member":"...","generation":N}                 when a session ends
//	{"event":"error","error":"..."}                                   errors from the group
//	{"event":"done","count":N}                                        on exit
//
// It stops (committing marked offsets and leaving the group) when -expect messages have arrived
// (if -expect > 0), when stdin reaches EOF (the test closes it), or after -timeout (exit code 2).
// Built offline in GOPATH mode against Debian's golang-github-shopify-sarama-dev.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/ioutil"
	"log"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Shopify/sarama"
)

var (
	outMu sync.Mutex
	count int64
)

func emit(v map[string]interface{}) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	outMu.Lock()
	os.Stdout.Write(append(b, '\n'))
	outMu.Unlock()
}

type handler struct {
	expect int64
	reached chan struct{}
	once    sync.Once
}

func (h *handler) Setup(s sarama.ConsumerGroupSession) error {
	claims := []int32{}
	for _, ps := range s.Claims() {
		claims = append(claims, ps...)
	}
	sort.Slice(claims, func(i, j int) bool { return claims[i] < claims[j] })
	emit(map[string]interface{}{"event": "setup", "member": s.MemberID(), "generation": s.GenerationID(), "claims": claims})
	return nil
}

func (h *handler) Cleanup(s sarama.ConsumerGroupSession) error {
	emit(map[string]interface{}{"event": "cleanup", "member": s.MemberID(), "generation": s.GenerationID()})
	return nil
}

func (h *handler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for m := range c.Messages() {
		emit(map[string]interface{}{"event": "msg", "partition": m.Partition, "offset": m.Offset, "value": string(m.Value)})
		s.MarkMessage(m, "")
		if n := atomic.AddInt64(&count, 1); h.expect > 0 && n >= h.expect {
			h.once.Do(func() { close(h.reached) })
		}
	}
	return nil
}

func main() {
	bootstrap := flag.String("bootstrap", "127.0.0.1:9092", "broker address")
	topic := flag.String("topic", "", "topic to consume")
	group := flag.String("group", "", "consumer group id")
	strategy := flag.String("strategy", "range", "range | roundrobin")
	expect := flag.Int64("expect", 0, "exit after this many messages (0: run until stdin EOF)")
	timeout := flag.Duration("timeout", 60*time.Second, "give up (exit 2) after this long")
	verbose := flag.Bool("v", false, "sarama debug log on stderr")
	retention := flag.Duration("retention", 0, "Consumer.Offsets.Retention (0, sarama's default, makes "+
		"sarama 1.22 commit with OffsetCommit v1; > 0 uses v2)")
	flag.Parse()
	if *topic == "" || *group == "" {
		fmt.Fprintln(os.Stderr, "usage: sarama_group -bootstrap H:P -topic T -group G [-strategy range|roundrobin] [-expect N]")
		os.Exit(64)
	}
	if *verbose {
		sarama.Logger = log.New(os.Stderr, "[sarama] ", log.LstdFlags|log.Lmicroseconds)
	}

	cfg := sarama.NewConfig()
	cfg.ClientID = "petrel-it-sarama"
	cfg.Version = sarama.V2_1_0_0
	cfg.Consumer.Return.Errors = true
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Offsets.CommitInterval = 200 * time.Millisecond
	cfg.Consumer.Offsets.Retention = *retention
	cfg.Consumer.Group.Session.Timeout = 10 * time.Second
	cfg.Consumer.Group.Heartbeat.Interval = 500 * time.Millisecond
	cfg.Consumer.Group.Rebalance.Timeout = 20 * time.Second
	cfg.Consumer.Group.Rebalance.Retry.Backoff = 200 * time.Millisecond
	cfg.Consumer.Group.Rebalance.Retry.Max = 20
	cfg.Metadata.Retry.Backoff = 200 * time.Millisecond
	switch strings.ToLower(*strategy) {
	case "range":
		cfg.Consumer.Group.Rebalance.Strategy = sarama.BalanceStrategyRange
	case "roundrobin":
		cfg.Consumer.Group.Rebalance.Strategy = sarama.BalanceStrategyRoundRobin
	default:
		fmt.Fprintf(os.Stderr, "unknown strategy %q\n", *strategy)
		os.Exit(64)
	}

	cg, err := sarama.NewConsumerGroup([]string{*bootstrap}, *group, cfg)
	if err != nil {
		emit(map[string]interface{}{"event": "error", "error": "NewConsumerGroup: " + err.Error()})
		os.Exit(1)
	}
	go func() {
		for e := range cg.Errors() {
			emit(map[string]interface{}{"event": "error", "error": e.Error()})
		}
	}()

	h := &handler{expect: *expect, reached: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	stdinEOF := make(chan struct{})
	go func() {
		io.Copy(ioutil.Discard, os.Stdin)
		close(stdinEOF)
	}()

	loopDone := make(chan struct{})
	go func() {
		defer close(loopDone)
		for ctx.Err() == nil {
			if err := cg.Consume(ctx, []string{*topic}, h); err != nil {
				emit(map[string]interface{}{"event": "error", "error": "Consume: " + err.Error()})
				if err == sarama.ErrClosedConsumerGroup {
					return
				}
				select {
				case <-ctx.Done():
				case <-time.After(200 * time.Millisecond):
				}
			}
		}
	}()

	code := 0
	select {
	case <-h.reached:
	case <-stdinEOF:
	case <-time.After(*timeout):
		code = 2
	}
	cancel()
	<-loopDone
	if err := cg.Close(); err != nil {
		emit(map[string]interface{}{"event": "error", "error": "Close: " + err.Error()})
	}
	emit(map[string]interface{}{"event": "done", "count": atomic.LoadInt64(&count)})
	os.Exit(code)
}
