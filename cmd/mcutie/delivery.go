package main

import (
	"flag"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/mcutie/mcutie/broker"
)

// deliveryConfig holds the flags of the delivery features (docs/delivery.md)
// and of the forwarding headers the WebSocket listeners honour.
type deliveryConfig struct {
	wsTrustedProxies prefixList
	autoSubscribe    string
}

// deliveryFlags registers the delivery features' flags; those that map to
// a broker option set o directly.
func deliveryFlags(fs *flag.FlagSet, c *deliveryConfig, o *broker.Options) {
	fs.StringVar(&c.autoSubscribe, "auto-subscribe", "", "YAML file of auto-subscribe rules: subscriptions made for a client at CONNECT, chosen by client id and user name (regular expressions), with %c/%u in the filter, QoS and MQTT 5 options; a bad rule stops the start with its line (docs/delivery.md)")
	fs.BoolVar(&o.DelayedPublish, "delayed-publish", false, "delayed messages: a PUBLISH to $delayed/{seconds}/{topic} is published to {topic} after the delay, kept in the store meanwhile (published at once after a restart if its time passed); the ACL applies to {topic} (docs/delivery.md)")
	fs.IntVar(&o.MaxDelayedMessages, "max-delayed-messages", 100000, "delayed messages waiting at most; beyond it a $delayed PUBLISH is refused (v5 PUBACK 0x97; 3.x acknowledged, dropped, counted and logged)")
	fs.DurationVar(&o.MaxDelay, "max-delay", 24*time.Hour, "longest delay of a $delayed PUBLISH; a longer one is refused (v5 PUBACK 0x83; 3.x acknowledged and dropped)")
	fs.BoolVar(&o.P2P, "p2p", false, "point-to-point messages: a PUBLISH to $p2p/{clientid}/{topic} goes to that client's session only, as a PUBLISH to {topic} (queued for an offline persistent session); the publisher needs write access to the $p2p topic, the recipient read access to {topic} (docs/delivery.md)")
	fs.Var(&c.wsTrustedProxies, "ws-trusted-proxies", "reverse proxies (IPs or CIDRs, comma-separated, repeatable) whose X-Forwarded-For or Forwarded header on a ws:// or wss:// upgrade names the client for logs, hooks, bans and per-IP limits (right-most untrusted hop); any other sender's header is ignored and counted (empty: all ignored)")
}

// autoSubscribeRule is one rule of the --auto-subscribe file.
type autoSubscribeRule struct {
	ClientID          string `yaml:"client_id"`
	Username          string `yaml:"username"`
	Filter            string `yaml:"filter"`
	QoS               byte   `yaml:"qos"`
	NoLocal           bool   `yaml:"no_local"`
	RetainAsPublished bool   `yaml:"retain_as_published"`
	RetainHandling    byte   `yaml:"retain_handling"`
}

// loadAutoSubscribe reads the --auto-subscribe file: a YAML list of
// rules. An error names the file and the line of the rule that is wrong.
func loadAutoSubscribe(path string) ([]broker.AutoSubscribeRule, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(doc.Content) == 0 {
		return nil, nil // empty file: no rules
	}
	list := doc.Content[0]
	if list.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("%s:%d: want a list of rules (- filter: …)", path, list.Line)
	}
	rules := make([]broker.AutoSubscribeRule, 0, len(list.Content))
	for _, n := range list.Content {
		at := fmt.Sprintf("%s:%d", path, n.Line)
		var r autoSubscribeRule
		if err := decodeStrict(n, &r); err != nil {
			return nil, fmt.Errorf("%s: %w", at, err)
		}
		br := broker.AutoSubscribeRule{Filter: r.Filter, QoS: r.QoS, NoLocal: r.NoLocal, RetainAsPublished: r.RetainAsPublished, RetainHandling: r.RetainHandling, Source: at}
		for _, re := range []struct {
			name, expr string
			dst        **regexp.Regexp
		}{{"client_id", r.ClientID, &br.ClientID}, {"username", r.Username, &br.Username}} {
			if re.expr == "" {
				continue
			}
			x, err := regexp.Compile(re.expr)
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %w", at, re.name, err)
			}
			*re.dst = x
		}
		if err := br.Check(); err != nil {
			return nil, fmt.Errorf("%s: %w", at, err)
		}
		rules = append(rules, br)
	}
	return rules, nil
}

// prefixList is a repeatable flag of comma-separated IP prefixes; a bare
// address is a /32 or /128.
type prefixList []netip.Prefix

func (l *prefixList) String() string {
	s := make([]string, len(*l))
	for i, p := range *l {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

func (l *prefixList) Set(v string) error {
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if a, err := netip.ParseAddr(f); err == nil {
			*l = append(*l, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return fmt.Errorf("%q is neither an IP address nor a CIDR prefix", f)
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		*l = append(*l, p.Masked())
	}
	return nil
}
