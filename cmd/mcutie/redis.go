package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"

	"github.com/mcutie/mcutie/store"
)

// redisConfig holds the --redis-* flags (--store redis).
type redisConfig struct {
	addr         string
	username     string
	password     string
	passwordFile string
	db           int
	tls          bool
	prefix       string
}

// redisPasswordEnv is read when neither --redis-password nor
// --redis-password-file is given (a password on the command line shows in
// ps).
const redisPasswordEnv = "MCUTIE_REDIS_PASSWORD"

func redisFlags(fs *flag.FlagSet, c *redisConfig) {
	fs.StringVar(&c.addr, "redis-addr", "127.0.0.1:6379", "Redis server host:port (--store redis)")
	fs.StringVar(&c.username, "redis-username", "", "Redis ACL user name (empty: the default user)")
	fs.StringVar(&c.password, "redis-password", "", "Redis password; prefer --redis-password-file or the "+redisPasswordEnv+" environment variable, which ps does not show")
	fs.StringVar(&c.passwordFile, "redis-password-file", "", "file holding the Redis password (one line)")
	fs.IntVar(&c.db, "redis-db", 0, "Redis database number")
	fs.BoolVar(&c.tls, "redis-tls", false, "connect to Redis with TLS, verifying its certificate against the system roots")
	fs.StringVar(&c.prefix, "redis-prefix", "mcutie:", "prefix of the Redis keys the broker uses (<prefix>data, <prefix>keys): brokers sharing one Redis need distinct prefixes")
}

// redisPassword returns the password from the flag, the file or the
// environment, in that order.
func (c *redisConfig) redisPassword() (string, error) {
	if c.password != "" {
		return c.password, nil
	}
	if c.passwordFile != "" {
		b, err := os.ReadFile(c.passwordFile)
		if err != nil {
			return "", fmt.Errorf("--redis-password-file: %w", err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	return os.Getenv(redisPasswordEnv), nil
}

// openRedis opens the Redis store: exit status 2 for a bad flag, 1 when
// Redis cannot be used.
func openRedis(cfg *config, d store.Durability, log *slog.Logger) (store.Store, int) {
	rc := &cfg.redis
	pw, err := rc.redisPassword()
	if err != nil {
		log.Error("cannot read the Redis password", "err", err)
		return nil, 2
	}
	o := store.RedisOptions{Addr: rc.addr, Username: rc.username, Password: pw, DB: rc.db, Prefix: rc.prefix,
		Durability: d, MaxBatch: cfg.commitBatch, MaxDelay: cfg.commitDelay, QueueSize: cfg.commitQueue,
		Logger: log, Metrics: cfg.storeMetrics}
	if rc.tls {
		host, _, err := net.SplitHostPort(rc.addr)
		if err != nil {
			log.Error("bad --redis-addr", "addr", rc.addr, "err", err)
			return nil, 2
		}
		o.TLS = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	}
	rs, err := store.OpenRedis(o)
	if err != nil {
		log.Error("cannot open the store", "redis", rc.addr, "err", err)
		return nil, 1
	}
	return rs, -1
}
