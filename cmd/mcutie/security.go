package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"

	"github.com/mcutie/mcutie/auth"
	"github.com/mcutie/mcutie/broker"
)

// security wires authentication and ACLs from the flags, and reloads the
// password and ACL files on SIGHUP.
type security struct {
	log            *slog.Logger
	passwordFile   string
	aclFile        string
	env            *auth.Passwords // users from MCUTIE_USERS / MCUTIE_USER_*
	pw             *auth.PasswordAuthenticator
	acl            *auth.ACLAuthorizer
	allowAnonymous bool
}

// setupSecurity reads the password file, the environment and the ACL
// file, decides whether anonymous clients are let in (--allow-anonymous,
// or by default only when every listener is on a loopback address), logs
// the outcome, and fills the broker options.
func setupSecurity(cfg *config, anonGiven bool, environ []string, o *broker.Options, log *slog.Logger) (*security, error) {
	s := &security{log: log, passwordFile: cfg.passwordFile, aclFile: cfg.aclFile}
	s.allowAnonymous = cfg.allowAnonymous
	why := "--allow-anonymous"
	if !anonGiven {
		s.allowAnonymous = allLoopback(cfg.listen)
		why = "default: every listener is loopback"
		if !s.allowAnonymous {
			why = "default: a listener is not loopback"
		}
	}
	env, used, err := auth.PasswordsFromEnv(environ, auth.DefaultIterations)
	if err != nil {
		return nil, err
	}
	s.env = env
	if len(used) > 0 {
		log.Info("users from the environment", "variables", strings.Join(used, ","), "users", env.Len())
	}
	users, err := s.loadUsers()
	if err != nil {
		return nil, err
	}
	if users != nil || !s.allowAnonymous {
		s.pw = auth.NewPasswordAuthenticator(users, cfg.authWorkers, cfg.authQueue)
		o.Authenticator = s.pw
	}
	o.DenyAnonymous = !s.allowAnonymous
	switch {
	case s.allowAnonymous:
		log.Info("anonymous access on: clients without a user name are let in", "why", why)
	case s.pw.Users() == 0:
		log.Warn("anonymous access off and no users: every connection will be refused; give --password-file, MCUTIE_USER_<name> or --allow-anonymous", "why", why)
	default:
		log.Info("anonymous access off: a user name and password are required", "why", why, "users", s.pw.Users())
	}
	if cfg.aclFile != "" {
		a, err := auth.LoadACL(cfg.aclFile)
		if err != nil {
			return nil, fmt.Errorf("--acl-file: %w", err)
		}
		s.acl = auth.NewACLAuthorizer(a)
		o.Authorizer = s.acl
		log.Info("ACL loaded", "file", cfg.aclFile, "rules", a.Rules())
	}
	return s, nil
}

// loadUsers merges the password file and the environment's users; nil
// when neither gives any.
func (s *security) loadUsers() (*auth.Passwords, error) {
	var p *auth.Passwords
	if s.passwordFile != "" {
		f, err := auth.LoadPasswords(s.passwordFile)
		if err != nil {
			return nil, fmt.Errorf("--password-file: %w", err)
		}
		s.log.Info("password file loaded", "file", s.passwordFile, "users", f.Len())
		p = f
	}
	if s.env != nil {
		if p == nil {
			p = auth.NewPasswords()
		}
		p.Merge(s.env) // the environment wins over the file
	}
	return p, nil
}

// reload rereads the password and ACL files (SIGHUP). A file that does not
// parse is reported and the rules in force stay; connections are kept.
func (s *security) reload() {
	if s.pw != nil && s.passwordFile != "" {
		if p, err := s.loadUsers(); err != nil {
			s.log.Error("reload: password file kept as it was", "err", err)
		} else {
			s.pw.Swap(p)
		}
	}
	if s.acl != nil {
		if a, err := auth.LoadACL(s.aclFile); err != nil {
			s.log.Error("reload: ACL kept as it was", "err", err)
		} else {
			s.acl.Swap(a)
			s.log.Info("ACL reloaded", "file", s.aclFile, "rules", a.Rules(), "generation", s.acl.Generation())
		}
	}
}

func (s *security) close() {
	if s != nil && s.pw != nil {
		s.pw.Close()
	}
}

// allLoopback reports whether every listener address is a loopback one.
func allLoopback(listen []string) bool {
	for _, l := range listen {
		host := l
		if u, err := url.Parse(l); err == nil && u.Host != "" {
			host = u.Host
		}
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if host == "localhost" {
			continue
		}
		ip := net.ParseIP(host)
		if ip == nil || !ip.IsLoopback() {
			return false
		}
	}
	return true
}
