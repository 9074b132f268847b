package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/mcutie/mcutie/auth"
)

// runPasswd is `mcutie passwd`: add, update or delete a user in a
// Mosquitto-compatible password file, or hash a plain-text one (-U), with
// mosquitto_passwd's options. New entries are $7$ (PBKDF2-SHA512) unless
// -H sha512 asks for $6$.
func runPasswd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mcutie passwd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	create := fs.Bool("c", false, "create a new file (overwrites an existing one)")
	del := fs.Bool("D", false, "delete the user")
	batch := fs.Bool("b", false, "batch mode: the password is the last argument (visible in the process list and shell history)")
	update := fs.Bool("U", false, "hash a plain-text password file (user:password lines) in place; entries already hashed are kept")
	hash := fs.String("H", "sha512-pbkdf2", "hash of new entries: sha512-pbkdf2 ($7$, recommended) or sha512 ($6$, what Mosquitto 1.6 and earlier write; far cheaper to guess)")
	iterations := fs.Int("iterations", auth.DefaultIterations, "PBKDF2 iterations of the new entry (mosquitto_passwd writes 101); every CONNECT check costs proportionally")
	fs.IntVar(iterations, "I", auth.DefaultIterations, "same as -iterations (mosquitto_passwd's name)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: mcutie passwd [-H sha512 | -H sha512-pbkdf2] [-c | -D] [-iterations N] FILE USER\n"+
			"       mcutie passwd [-H sha512 | -H sha512-pbkdf2] [-c] -b [-iterations N] FILE USER PASSWORD\n"+
			"       mcutie passwd [-H sha512 | -H sha512-pbkdf2] -U FILE\n\n"+
			"Adds or updates USER in the Mosquitto-compatible password FILE (asking for the\n"+
			"password twice on a terminal, or reading one line from standard input), or\n"+
			"deletes it with -D, or hashes every plain-text user:password line of FILE\n"+
			"with -U. A running broker rereads the file on SIGHUP.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintln(stderr, "mcutie passwd:", err)
		return 1
	}
	newEntry := func(pw []byte) (auth.Entry, error) {
		if *hash == "sha512" {
			return auth.NewSHA512Entry(pw)
		}
		return auth.NewEntry(pw, *iterations)
	}
	if *hash != "sha512" && *hash != "sha512-pbkdf2" {
		fmt.Fprintf(stderr, "mcutie passwd: unknown hash %q (want sha512-pbkdf2 or sha512)\n", *hash)
		return 2
	}
	if *update {
		if *create || *del || *batch || fs.NArg() != 1 {
			fmt.Fprintln(stderr, "mcutie passwd: -U takes one FILE and none of -c, -D and -b")
			return 2
		}
		n, kept, err := hashPlainFile(fs.Arg(0), newEntry)
		if err != nil {
			return fail(err)
		}
		fmt.Fprintf(stderr, "mcutie passwd: %s: %d password(s) hashed, %d already hashed and kept\n", fs.Arg(0), n, kept)
		return 0
	}
	want := 2
	if *batch {
		want = 3
	}
	if fs.NArg() != want || (*create && *del) {
		fs.Usage()
		return 2
	}
	path, user := fs.Arg(0), fs.Arg(1)
	if err := auth.ValidUser(user); err != nil {
		return fail(err)
	}
	p := auth.NewPasswords()
	if !*create {
		var err error
		if p, err = auth.LoadPasswords(path); err != nil {
			return fail(err)
		}
	}
	if *del {
		if !p.Delete(user) {
			return fail(fmt.Errorf("user %q is not in %s", user, path))
		}
	} else {
		var pw []byte
		if *batch {
			pw = []byte(fs.Arg(2))
		} else {
			var err error
			if pw, err = askPassword(stdin, stderr); err != nil {
				return fail(err)
			}
		}
		e, err := newEntry(pw)
		if err != nil {
			return fail(err)
		}
		p.Set(user, e)
	}
	if err := writeFileAtomic(path, p.WriteTo); err != nil {
		return fail(err)
	}
	return 0
}

// hashPlainFile is -U: every "user:password" line of the file at path
// becomes "user:<hash>", in place (through a temporary file and a rename).
// As mosquitto_passwd -U, blanks around the user and the password are
// trimmed and an empty one is an error naming the line. Unlike it, lines
// already holding a $6$ or $7$ hash are kept (hashing a hash would lock
// the user out), as are empty lines and # comments, and the password is
// everything after the first ':' (mosquitto_passwd stops at a second one).
// It returns how many entries it hashed and kept.
func hashPlainFile(path string, newEntry func([]byte) (auth.Entry, error)) (hashed, kept int, err error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, err
	}
	var out bytes.Buffer
	lines := strings.SplitAfter(string(raw), "\n")
	for i, line := range lines {
		body := strings.TrimRight(line, "\r\n")
		if strings.TrimSpace(body) == "" || strings.HasPrefix(strings.TrimSpace(body), "#") {
			out.WriteString(line)
			continue
		}
		user, pw, ok := strings.Cut(body, ":")
		user, pw = strings.Trim(user, " \t"), strings.Trim(pw, " \t")
		if !ok || user == "" || pw == "" {
			return 0, 0, fmt.Errorf("%s: line %d: want user:password", path, i+1)
		}
		if err := auth.ValidUser(user); err != nil {
			return 0, 0, fmt.Errorf("%s: line %d: %w", path, i+1, err)
		}
		if _, err := auth.ParseEntry(pw); err == nil {
			kept++
			out.WriteString(line)
			continue
		}
		e, err := newEntry([]byte(pw))
		if err != nil {
			return 0, 0, err
		}
		hashed++
		out.WriteString(user + ":" + e.String() + "\n")
	}
	return hashed, kept, writeFileAtomic(path, out.WriteTo)
}

// askPassword reads the password twice without echo from a terminal, or
// one line from any other standard input.
func askPassword(stdin io.Reader, stderr io.Writer) ([]byte, error) {
	if f, ok := stdin.(*os.File); ok && isTerminal(f) {
		fmt.Fprint(stderr, "Password: ")
		a, err := readNoEcho(f)
		fmt.Fprintln(stderr)
		if err != nil {
			return nil, err
		}
		fmt.Fprint(stderr, "Reenter password: ")
		b, err := readNoEcho(f)
		fmt.Fprintln(stderr)
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(a, b) {
			return nil, errors.New("passwords do not match")
		}
		return a, nil
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && line == "" {
		return nil, errors.New("no password on standard input")
	}
	return []byte(strings.TrimRight(line, "\r\n")), nil
}

// writeFileAtomic replaces path through a temporary file and a rename,
// so a broker reloading on SIGHUP never reads half a file.
func writeFileAtomic(path string, write func(io.Writer) (int64, error)) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".mcutie-passwd-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := write(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
