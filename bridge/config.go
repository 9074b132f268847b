package bridge

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/mcutie/mcutie/codec"
)

// File is the --bridges file:
//
//	bridges:
//	  - name: cloud
//	    address: tls://mqtt.example.com:8883
//	    topics:
//	      - {pattern: "sensors/#", direction: out, qos: 1, remote_prefix: site-1/}
type File struct {
	Bridges []Config `yaml:"bridges"`
}

// Config is one bridge.
type Config struct {
	// Name names the bridge in metrics, $SYS topics, logs and the local
	// session's client id ($mcutie/bridge/NAME): letters, digits, '-',
	// '_' and '.'.
	Name string `yaml:"name"`
	// Address is the remote broker: tcp://host:port or tls://host:port
	// (ssl:// and mqtts:// are tls://; the port defaults to 1883 / 8883).
	Address string `yaml:"address"`
	// Protocol is "5" (default) or "3.1.1".
	Protocol string `yaml:"protocol"`
	// ClientID on the remote broker (default "mcutie-bridge-NAME"). With
	// a persistent remote session it must be stable and unique there.
	ClientID string `yaml:"client_id"`
	// Username on the remote broker; the password comes from
	// PasswordFile (its first line) or the environment variable
	// PasswordEnv, never from this file.
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"password_file"`
	PasswordEnv  string `yaml:"password_env"`
	TLS          TLS    `yaml:"tls"`
	// CleanSession asks the remote for a new session on every connection
	// (v5 Clean Start and no session expiry). By default the remote keeps
	// the session (its subscriptions and the QoS 1 messages for this
	// bridge while it is away) for SessionExpiry (v5; 3.1.1 keeps it as
	// long as the remote does).
	CleanSession  bool          `yaml:"clean_session"`
	SessionExpiry time.Duration `yaml:"session_expiry"`
	// KeepAlive is the remote connection's keep-alive (default 60s).
	KeepAlive time.Duration `yaml:"keepalive"`
	// ConnectTimeout bounds the dial, the TLS handshake and the CONNACK
	// (default 10s).
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// Reconnect is the wait between connection attempts: it doubles from
	// Min to at most Max after each failure, each wait drawn at random
	// between half and all of it (jitter), and starts again from Min once
	// a connection has lasted Max.
	Reconnect Backoff `yaml:"reconnect"`
	// MaxInflight is how many outbound messages may be handed to the
	// remote and not yet acknowledged (default 64, at most 65535): the
	// local session's Receive Maximum. Beyond it messages wait in the
	// broker's session queue (--max-queued-messages, --max-queued-bytes).
	MaxInflight int `yaml:"max_inflight"`
	// Topics are the mappings (at least one).
	Topics []Topic `yaml:"topics"`
}

// TLS configures a tls:// remote.
type TLS struct {
	// CAFile verifies the remote's certificate (default: the system
	// roots).
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are the bridge's client certificate.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName is checked against the remote's certificate (default the
	// address's host).
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify accepts any certificate: tests only.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// Backoff bounds the reconnect waits.
type Backoff struct {
	Min time.Duration `yaml:"min"`
	Max time.Duration `yaml:"max"`
}

// Topic is one mapping, Mosquitto's "topic pattern direction qos
// local-prefix remote-prefix": an out mapping subscribes to
// LocalPrefix+Pattern locally and publishes each message to the remote
// with LocalPrefix replaced by RemotePrefix; an in mapping subscribes to
// RemotePrefix+Pattern on the remote and publishes locally with
// RemotePrefix replaced by LocalPrefix; both does both. An empty Pattern
// maps the single topic LocalPrefix to RemotePrefix.
type Topic struct {
	Pattern      string `yaml:"pattern"`
	Direction    string `yaml:"direction"` // in, out (default) or both
	QoS          byte   `yaml:"qos"`       // 0 (default) or 1
	LocalPrefix  string `yaml:"local_prefix"`
	RemotePrefix string `yaml:"remote_prefix"`
}

// Defaults.
const (
	DefaultKeepAlive      = 60 * time.Second
	DefaultConnectTimeout = 10 * time.Second
	DefaultReconnectMin   = time.Second
	DefaultReconnectMax   = time.Minute
	DefaultMaxInflight    = 64
	DefaultSessionExpiry  = 24 * time.Hour
)

// Load reads and checks the file at path.
func Load(path string) ([]Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read the bridges file: %w", err)
	}
	cs, err := Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("bridges file %s: %w", path, err)
	}
	return cs, nil
}

// Parse reads and checks a bridges file's bytes: an unknown key, a value
// of the wrong type or a bad setting is an error naming its line or its
// bridge and mapping. The defaults are filled in.
func Parse(raw []byte) ([]Config, error) {
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for i := range f.Bridges {
		c := &f.Bridges[i]
		if err := c.check(); err != nil {
			return nil, fmt.Errorf("bridges[%d] (%s): %w", i, c.Name, err)
		}
		if seen[c.Name] {
			return nil, fmt.Errorf("bridges[%d]: name %q used twice", i, c.Name)
		}
		seen[c.Name] = true
	}
	return f.Bridges, nil
}

// check validates c and fills in its defaults.
func (c *Config) check() error {
	if c.Name == "" {
		return errors.New("name: missing")
	}
	for _, r := range c.Name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Errorf("name %q: only letters, digits, '-', '_' and '.'", c.Name)
		}
	}
	if _, _, err := c.remote(); err != nil {
		return err
	}
	switch c.Protocol {
	case "", "5", "5.0", "mqttv5":
		c.Protocol = "5"
	case "3.1.1", "311", "4", "mqttv311":
		c.Protocol = "3.1.1"
	default:
		return fmt.Errorf("protocol %q: want 5 or 3.1.1", c.Protocol)
	}
	if c.ClientID == "" {
		c.ClientID = "mcutie-bridge-" + c.Name
	}
	if c.PasswordFile != "" && c.PasswordEnv != "" {
		return errors.New("password_file and password_env: give one")
	}
	if (c.PasswordFile != "" || c.PasswordEnv != "") && c.Username == "" {
		return errors.New("a password needs a username")
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		return errors.New("tls: cert_file and key_file go together")
	}
	if c.KeepAlive == 0 {
		c.KeepAlive = DefaultKeepAlive
	}
	if c.KeepAlive < time.Second || c.KeepAlive > 65535*time.Second {
		return fmt.Errorf("keepalive %s: between 1s and 65535s", c.KeepAlive)
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.SessionExpiry == 0 {
		c.SessionExpiry = DefaultSessionExpiry
	}
	if c.ConnectTimeout < 0 || c.SessionExpiry < 0 {
		return errors.New("connect_timeout and session_expiry must not be negative")
	}
	if c.Reconnect.Min == 0 {
		c.Reconnect.Min = DefaultReconnectMin
	}
	if c.Reconnect.Max == 0 {
		c.Reconnect.Max = max(DefaultReconnectMax, c.Reconnect.Min)
	}
	if c.Reconnect.Min < 0 || c.Reconnect.Max < c.Reconnect.Min {
		return fmt.Errorf("reconnect: want 0 < min <= max (min %s, max %s)", c.Reconnect.Min, c.Reconnect.Max)
	}
	if c.MaxInflight == 0 {
		c.MaxInflight = DefaultMaxInflight
	}
	if c.MaxInflight < 1 || c.MaxInflight > 65535 {
		return fmt.Errorf("max_inflight %d: between 1 and 65535", c.MaxInflight)
	}
	if len(c.Topics) == 0 {
		return errors.New("topics: at least one mapping")
	}
	for i := range c.Topics {
		if err := c.Topics[i].check(); err != nil {
			return fmt.Errorf("topics[%d]: %w", i, err)
		}
	}
	return nil
}

// remote splits Address into the scheme (tcp or tls) and host:port.
func (c *Config) remote() (scheme, hostport string, err error) {
	u, err := url.Parse(c.Address)
	if err != nil || u.Host == "" {
		return "", "", fmt.Errorf("address %q: want tcp://host:port or tls://host:port", c.Address)
	}
	port := "1883"
	switch u.Scheme {
	case "tcp", "mqtt":
		scheme = "tcp"
	case "tls", "ssl", "mqtts":
		scheme, port = "tls", "8883"
	default:
		return "", "", fmt.Errorf("address %q: scheme %q (want tcp:// or tls://)", c.Address, u.Scheme)
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" {
		return "", "", fmt.Errorf("address %q: no path or query", c.Address)
	}
	hostport = u.Host
	if u.Port() == "" {
		hostport = u.Host + ":" + port
	}
	if scheme == "tcp" && (c.TLS != TLS{}) {
		return "", "", fmt.Errorf("address %q: tls settings need a tls:// address", c.Address)
	}
	return scheme, hostport, nil
}

// check validates t (Mosquitto's rules: prefixes hold no wildcards; an
// empty pattern needs both prefixes, which are then topics).
func (t *Topic) check() error {
	switch t.Direction {
	case "":
		t.Direction = "out"
	case "in", "out", "both":
	default:
		return fmt.Errorf("direction %q: want in, out or both", t.Direction)
	}
	if t.QoS > 1 {
		return fmt.Errorf("qos %d: bridges carry QoS 0 or 1 (at least once); QoS 2 is not supported", t.QoS)
	}
	for _, p := range []string{t.LocalPrefix, t.RemotePrefix} {
		if strings.ContainsAny(p, "+#") {
			return fmt.Errorf("prefix %q: no wildcards in a prefix", p)
		}
	}
	if t.Pattern == "" {
		if t.LocalPrefix == "" || t.RemotePrefix == "" {
			return errors.New("an empty pattern maps the topic local_prefix to the topic remote_prefix: give both")
		}
		for _, p := range []string{t.LocalPrefix, t.RemotePrefix} {
			if err := codec.ValidateTopicName([]byte(p)); err != nil {
				return fmt.Errorf("prefix %q with an empty pattern is a topic: %v", p, err)
			}
		}
		return nil
	}
	for _, f := range []string{t.LocalPrefix + t.Pattern, t.RemotePrefix + t.Pattern} {
		if err := codec.ValidateTopicFilter([]byte(f)); err != nil {
			return fmt.Errorf("filter %q: %v", f, err)
		}
	}
	return nil
}

// password reads the remote password from its file or variable.
func (c *Config) password() (string, error) {
	switch {
	case c.PasswordFile != "":
		b, err := os.ReadFile(c.PasswordFile)
		if err != nil {
			return "", fmt.Errorf("password_file: %w", err)
		}
		line, _, _ := strings.Cut(string(b), "\n")
		return strings.TrimRight(line, "\r"), nil
	case c.PasswordEnv != "":
		v, ok := os.LookupEnv(c.PasswordEnv)
		if !ok {
			return "", fmt.Errorf("password_env: $%s is not set", c.PasswordEnv)
		}
		return v, nil
	}
	return "", nil
}
