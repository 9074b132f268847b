package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
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
	usersChecked   bool // an Authenticator checks every user name
	certUsers      bool // every listener takes the user name from the client certificate
}

// setupSecurity reads the password file, the environment and the ACL
// file, decides whether anonymous clients are let in (--allow-anonymous,
// or by default only when every listener is local and no credentials are
// configured: see anonymousDefault), logs the outcome, and fills the
// broker options.
func setupSecurity(cfg *config, anonGiven bool, environ []string, o *broker.Options, log *slog.Logger) (*security, error) {
	s := &security{log: log, passwordFile: cfg.passwordFile, aclFile: cfg.aclFile, certUsers: cfg.tlsUsernameFromCN && allTLS(cfg.listen)}
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
	s.allowAnonymous = cfg.allowAnonymous
	why := "--allow-anonymous"
	if !anonGiven {
		s.allowAnonymous, why = anonymousDefault(cfg.listen, users != nil)
	}
	if cfg.clientIDPrefixUser {
		if anonGiven && cfg.allowAnonymous {
			return nil, fmt.Errorf("--client-id-prefix-user needs anonymous access off: an anonymous client has no user name to bind its client id to (drop --allow-anonymous)")
		}
		s.allowAnonymous, why = false, "--client-id-prefix-user"
	}
	if users != nil || !s.allowAnonymous {
		s.pw = auth.NewPasswordAuthenticator(users, cfg.authWorkers, cfg.authQueue)
		o.Authenticator = s.pw
	}
	if cfg.clientIDPrefixUser {
		o.Authenticator = &auth.ClientIDBinder{Next: s.pw}
		log.Info("client ids bound to user names: a client id must be <user> or <user>:<suffix>", "why", "--client-id-prefix-user")
	}
	o.DenyAnonymous = !s.allowAnonymous
	s.usersChecked = o.Authenticator != nil
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
		s.warnUnchecked(a)
	}
	return s, nil
}

// warnUnchecked warns when the ACL gives rights by user name while user
// names are taken on trust (no Authenticator: anonymous access on and no
// users), so any client may claim any user's rights.
func (s *security) warnUnchecked(a *auth.ACL) {
	if s.usersChecked || s.certUsers || !a.NamesUsers() {
		return
	}
	s.log.Warn("the ACL grants rights by user name, but user names are not authenticated (anonymous access on and no users): any client can claim any user's rights; give --password-file or MCUTIE_USER_<name>", "acl", s.aclFile)
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
			s.warnUnchecked(a)
		}
	}
}

func (s *security) close() {
	if s != nil && s.pw != nil {
		s.pw.Close()
	}
}

// anonymousDefault decides anonymous access when --allow-anonymous is not
// given: on only when no credentials are configured and every listener
// can carry nothing but local traffic (localOnly). why says which.
func anonymousDefault(listen []string, users bool) (bool, string) {
	if users {
		return false, "default: users are configured"
	}
	if ok, why := localOnly(listen); !ok {
		return false, "default: " + why
	}
	return true, "default: every listener is loopback and no users are configured"
}

// localOnly reports whether every listener carries local traffic only: a
// loopback address, no PROXY protocol (a balancer forwards remote clients
// to it) and no WebSocket (usually behind a reverse proxy on the same
// host). why names the first listener that is not.
func localOnly(listen []string) (ok bool, why string) {
	for _, l := range listen {
		host := l
		u, err := url.Parse(l)
		if err == nil && u.Host != "" {
			host = u.Host
			if u.Scheme == "ws" || u.Scheme == "wss" {
				return false, "listener " + l + " is WebSocket (often behind a reverse proxy)"
			}
			if v, ok := u.Query()["proxy"]; ok {
				if b, err := strconv.ParseBool(strings.Join(v, "")); err != nil || b {
					return false, "listener " + l + " takes the PROXY protocol (forwarded clients)"
				}
			}
		}
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if host == "localhost" {
			continue
		}
		ip := net.ParseIP(host)
		if ip == nil || !ip.IsLoopback() {
			return false, "listener " + l + " is not loopback"
		}
	}
	return true, ""
}

// allTLS reports whether every listener is tls:// or wss:// (with
// --tls-username-from-cn, every user name then comes from a verified
// certificate).
func allTLS(listen []string) bool {
	for _, l := range listen {
		if u, err := url.Parse(l); err != nil || (u.Scheme != "tls" && u.Scheme != "wss") {
			return false
		}
	}
	return len(listen) > 0
}
