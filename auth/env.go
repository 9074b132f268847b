package auth

import (
	"fmt"
	"sort"
	"strings"
)

// Environment variables that carry credentials, for containers where
// mounting a password file is awkward.
const (
	// EnvUsers holds password-file lines ("user:$7$…"), separated by
	// newlines, spaces or commas: the content of a password file.
	EnvUsers = "MCUTIE_USERS"
	// EnvUserPrefix + name holds that user's password: a "$7$…" or "$6$…"
	// hash as in a password file, or else the plain password, hashed in
	// memory at start-up (never written anywhere). An empty value is an
	// error.
	EnvUserPrefix = "MCUTIE_USER_"
)

// PasswordsFromEnv reads EnvUsers and every EnvUserPrefix variable from
// environ (os.Environ's format) and reports which variables it used, for
// the start-up log. It returns nil when none is set.
func PasswordsFromEnv(environ []string, iterations int) (*Passwords, []string, error) {
	var used []string
	p := NewPasswords()
	vars := map[string]string{}
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if ok {
			vars[k] = v
		}
	}
	if v, ok := vars[EnvUsers]; ok {
		used = append(used, EnvUsers)
		fields := strings.FieldsFunc(v, func(r rune) bool { return r == '\n' || r == ' ' || r == ',' || r == '\t' || r == '\r' })
		for _, f := range fields {
			u, h, ok := strings.Cut(f, ":")
			if !ok || u == "" {
				return nil, nil, fmt.Errorf("%s: want user:hash entries, got %q", EnvUsers, f)
			}
			e, err := ParseEntry(h)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: user %q: %w", EnvUsers, u, err)
			}
			p.Set(u, e)
		}
	}
	keys := make([]string, 0, len(vars))
	for k := range vars {
		if strings.HasPrefix(k, EnvUserPrefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		user, secret := strings.TrimPrefix(k, EnvUserPrefix), vars[k]
		if err := ValidUser(user); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", k, err)
		}
		if secret == "" {
			// What an unset ${SECRET} in a compose file or manifest
			// gives: refused, or user would log in with no password.
			return nil, nil, fmt.Errorf("%s is set but empty: give the password (or a $7$/$6$ hash), or unset the variable", k)
		}
		var e Entry
		var err error
		if strings.HasPrefix(secret, "$6$") || strings.HasPrefix(secret, "$7$") {
			e, err = ParseEntry(secret)
		} else {
			e, err = NewEntry([]byte(secret), iterations)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", k, err)
		}
		p.Set(user, e)
		used = append(used, k)
	}
	if len(used) == 0 {
		return nil, nil, nil
	}
	return p, used, nil
}
