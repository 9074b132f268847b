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
// Mosquitto-compatible password file. New entries are $7$ (PBKDF2-SHA512).
func runPasswd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mcutie passwd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	create := fs.Bool("c", false, "create a new file (overwrites an existing one)")
	del := fs.Bool("D", false, "delete the user")
	batch := fs.Bool("b", false, "batch mode: the password is the last argument (visible in the process list and shell history)")
	iterations := fs.Int("iterations", auth.DefaultIterations, "PBKDF2 iterations of the new entry (mosquitto_passwd writes 101); every CONNECT check costs proportionally")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: mcutie passwd [-c | -D] [-iterations N] FILE USER\n       mcutie passwd [-c] -b [-iterations N] FILE USER PASSWORD\n\n"+
			"Adds or updates USER in the Mosquitto-compatible password FILE (asking for the\n"+
			"password twice on a terminal, or reading one line from standard input), or\n"+
			"deletes it with -D. A running broker rereads the file on SIGHUP.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
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
	fail := func(err error) int {
		fmt.Fprintln(stderr, "mcutie passwd:", err)
		return 1
	}
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
		e, err := auth.NewEntry(pw, *iterations)
		if err != nil {
			return fail(err)
		}
		p.Set(user, e)
	}
	if err := writeFileAtomic(path, p); err != nil {
		return fail(err)
	}
	return 0
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
func writeFileAtomic(path string, p *auth.Passwords) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".mcutie-passwd-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := p.WriteTo(tmp); err != nil {
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
