//go:build scram

// SCRAM for sarama 1.22's Net.SASL (SCRAMClientGeneratorFunc), with Debian's xdg-go/scram
// (golang-github-xdg-go-scram-dev). Built only with -tags scram, so the PLAIN tests need nothing
// beyond sarama.
package main

import (
	"github.com/Shopify/sarama"
	"github.com/xdg-go/scram"
)

type scramClient struct {
	hash         scram.HashGeneratorFcn
	conversation *scram.ClientConversation
}

func (c *scramClient) Begin(user, password, authzID string) error {
	client, err := c.hash.NewClient(user, password, authzID)
	if err != nil {
		return err
	}
	c.conversation = client.NewConversation()
	return nil
}

func (c *scramClient) Step(challenge string) (string, error) { return c.conversation.Step(challenge) }
func (c *scramClient) Done() bool                             { return c.conversation.Done() }

func init() {
	scramGenerator = func(mechanism string) func() sarama.SCRAMClient {
		hash := scram.SHA256
		if mechanism == sarama.SASLTypeSCRAMSHA512 {
			hash = scram.SHA512
		}
		return func() sarama.SCRAMClient { return &scramClient{hash: hash} }
	}
}
