package auth

import (
	"bufio"
	"bytes"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
)

// DefaultIterations is the PBKDF2 iteration count of new $7$ entries: the
// count mosquitto_passwd (2.0) writes, so a file shared with Mosquitto
// costs both brokers the same per check. Raise it with `mcutie passwd
// -iterations` for passwords people choose; every check costs
// proportionally more CPU (run off the event loops).
const DefaultIterations = 101

// saltLen and hashLen are what mosquitto_passwd writes: a 12-byte salt and
// a 64-byte (SHA-512 sized) derived key.
const (
	saltLen = 12
	hashLen = 64
)

// MaxIterations bounds the iteration count read from a file, so a
// tampered entry cannot make one check cost seconds of CPU.
const MaxIterations = 10_000_000

type hashKind uint8

const (
	kindSHA512 hashKind = 6 // $6$: SHA-512(password || salt), Mosquitto ≤ 1.6
	kindPBKDF2 hashKind = 7 // $7$: PBKDF2-HMAC-SHA512
)

// Entry is one user's hashed password.
type Entry struct {
	kind       hashKind
	iterations int
	salt       []byte
	hash       []byte
}

// ParseEntry parses the part of a password-file line after "user:":
// "$7$<iterations>$<salt b64>$<hash b64>" or "$6$<salt b64>$<hash b64>".
func ParseEntry(s string) (Entry, error) {
	parts := strings.Split(s, "$")
	// A leading '$' gives an empty first part.
	if len(parts) < 4 || parts[0] != "" {
		return Entry{}, errors.New("auth: not a hashed password ($6$ or $7$ entry); hash plain-text files with mcutie passwd or mosquitto_passwd -U")
	}
	var e Entry
	switch parts[1] {
	case "6":
		if len(parts) != 4 {
			return Entry{}, errors.New("auth: malformed $6$ entry")
		}
		e.kind = kindSHA512
		parts = parts[2:]
	case "7":
		if len(parts) != 5 {
			return Entry{}, errors.New("auth: malformed $7$ entry")
		}
		n, err := strconv.Atoi(parts[2])
		if err != nil || n < 1 || n > MaxIterations {
			return Entry{}, fmt.Errorf("auth: $7$ entry has a bad iteration count %q (1..%d)", parts[2], MaxIterations)
		}
		e.kind, e.iterations = kindPBKDF2, n
		parts = parts[3:]
	default:
		return Entry{}, fmt.Errorf("auth: unsupported hash type $%s$ (want $6$ or $7$)", parts[1])
	}
	var err error
	if e.salt, err = base64.StdEncoding.DecodeString(parts[0]); err != nil || len(e.salt) == 0 {
		return Entry{}, errors.New("auth: bad salt (want base64)")
	}
	if e.hash, err = base64.StdEncoding.DecodeString(parts[1]); err != nil || len(e.hash) != hashLen {
		return Entry{}, fmt.Errorf("auth: bad hash (want %d bytes of base64)", hashLen)
	}
	return e, nil
}

// NewEntry hashes password as a $7$ entry with a fresh random salt.
func NewEntry(password []byte, iterations int) (Entry, error) {
	if iterations < 1 || iterations > MaxIterations {
		return Entry{}, fmt.Errorf("auth: iterations must be 1..%d", MaxIterations)
	}
	e := Entry{kind: kindPBKDF2, iterations: iterations, salt: make([]byte, saltLen)}
	if _, err := rand.Read(e.salt); err != nil {
		return Entry{}, err
	}
	e.hash = e.derive(password)
	return e, nil
}

// NewSHA512Entry hashes password as a $6$ entry (one SHA-512 over the
// password and a fresh random salt): what mosquitto_passwd -H sha512 and
// Mosquitto 1.6 and earlier write. Far cheaper to guess than $7$; for
// files that older brokers must read.
func NewSHA512Entry(password []byte) (Entry, error) {
	e := Entry{kind: kindSHA512, salt: make([]byte, saltLen)}
	if _, err := rand.Read(e.salt); err != nil {
		return Entry{}, err
	}
	e.hash = e.derive(password)
	return e, nil
}

// String formats e as in a password file (without "user:").
func (e Entry) String() string {
	enc := base64.StdEncoding
	if e.kind == kindSHA512 {
		return "$6$" + enc.EncodeToString(e.salt) + "$" + enc.EncodeToString(e.hash)
	}
	return "$7$" + strconv.Itoa(e.iterations) + "$" + enc.EncodeToString(e.salt) + "$" + enc.EncodeToString(e.hash)
}

func (e Entry) derive(password []byte) []byte {
	if e.kind == kindSHA512 {
		// Mosquitto's legacy scheme (pw__digest in its source): one
		// SHA-512 over the password followed by the raw salt.
		h := sha512.New()
		h.Write(password)
		h.Write(e.salt)
		return h.Sum(nil)
	}
	k, err := pbkdf2.Key(sha512.New, string(password), e.salt, e.iterations, hashLen)
	if err != nil {
		// Only FIPS-mode restrictions make Key fail; treat as no match.
		return make([]byte, hashLen)
	}
	return k
}

// Verify reports whether password matches e. The comparison takes the
// same time wherever the first differing byte is.
func (e Entry) Verify(password []byte) bool {
	if len(e.hash) == 0 {
		return false
	}
	return subtle.ConstantTimeCompare(e.derive(password), e.hash) == 1
}

// Passwords is a set of users and their hashed passwords. Immutable once
// built by ParsePasswords (Set and Delete are for `mcutie passwd`, before
// the value is shared): safe for concurrent Check.
type Passwords struct {
	users map[string]Entry
	order []string // file order, for rewriting
	dummy Entry    // checked for unknown users, so timing does not reveal them
}

// NewPasswords returns an empty set.
func NewPasswords() *Passwords {
	return &Passwords{users: map[string]Entry{}}
}

// ParsePasswords reads a Mosquitto password file: one "user:hash" per
// line; empty lines and lines starting with '#' are skipped. An error
// names the line.
func ParsePasswords(r io.Reader) (*Passwords, error) {
	p := NewPasswords()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		i := strings.IndexByte(line, ':')
		if i <= 0 {
			return nil, fmt.Errorf("line %d: want user:hash", n)
		}
		e, err := ParseEntry(line[i+1:])
		if err != nil {
			return nil, fmt.Errorf("line %d (user %q): %w", n, line[:i], err)
		}
		p.Set(line[:i], e)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return p, nil
}

// LoadPasswords reads the password file at path.
func LoadPasswords(path string) (*Passwords, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	p, err := ParsePasswords(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// Set adds or replaces user's entry. Not for a shared value.
func (p *Passwords) Set(user string, e Entry) {
	if _, ok := p.users[user]; !ok {
		p.order = append(p.order, user)
	}
	p.users[user] = e
	p.dummy = Entry{}
}

// Delete removes user and reports whether it was there. Not for a shared
// value.
func (p *Passwords) Delete(user string) bool {
	if _, ok := p.users[user]; !ok {
		return false
	}
	delete(p.users, user)
	for i, u := range p.order {
		if u == user {
			p.order = append(p.order[:i], p.order[i+1:]...)
			break
		}
	}
	p.dummy = Entry{}
	return true
}

// Merge adds every user of o, replacing entries of the same name.
func (p *Passwords) Merge(o *Passwords) {
	for _, u := range o.order {
		p.Set(u, o.users[u])
	}
}

// Len is the number of users.
func (p *Passwords) Len() int { return len(p.users) }

// Users returns the user names, sorted.
func (p *Passwords) Users() []string {
	u := append([]string(nil), p.order...)
	sort.Strings(u)
	return u
}

// Seal prepares p for sharing: it picks the dummy entry unknown users are
// checked against (the scheme and iteration count most entries use), so a
// failed check for a missing user costs what one for a real user costs.
func (p *Passwords) Seal() *Passwords {
	counts := map[int]int{} // iterations → entries; 0 = $6$
	best, bestN := DefaultIterations, 0
	for _, e := range p.users {
		it := 0
		if e.kind == kindPBKDF2 {
			it = e.iterations
		}
		counts[it]++
		if counts[it] > bestN {
			best, bestN = it, counts[it]
		}
	}
	d, _ := NewEntry([]byte("dummy password, never matches"), max(best, 1))
	if best == 0 {
		d.kind = kindSHA512
	}
	// Scramble the stored hash so no password verifies against it.
	_, _ = rand.Read(d.hash)
	p.dummy = d
	return p
}

// Check reports whether password is user's. An unknown user costs the
// same derivation as a known one (against a dummy entry), so response
// time does not tell whether a user exists. Safe for concurrent use once
// Seal has been called.
func (p *Passwords) Check(user string, password []byte) bool {
	e, ok := p.users[user]
	if !ok {
		if len(p.dummy.hash) == 0 {
			panic("BUG: auth: Passwords.Check before Seal")
		}
		p.dummy.Verify(password)
		return false
	}
	return e.Verify(password)
}

// WriteTo writes p in password-file format, in the order users were added.
func (p *Passwords) WriteTo(w io.Writer) (int64, error) {
	var b bytes.Buffer
	for _, u := range p.order {
		b.WriteString(u)
		b.WriteByte(':')
		b.WriteString(p.users[u].String())
		b.WriteByte('\n')
	}
	return b.WriteTo(w)
}

// ValidUser reports whether name can be stored in a password file: not
// empty, no ':' (the separator) and no line break.
func ValidUser(name string) error {
	if name == "" {
		return errors.New("auth: empty user name")
	}
	if strings.ContainsAny(name, ":\r\n") {
		return errors.New("auth: a user name cannot contain ':' or a line break")
	}
	return nil
}
