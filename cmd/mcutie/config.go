package main

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/mcutie/mcutie/tuning"
	"gopkg.in/yaml.v3"
)

// Where a setting comes from, strongest first: the command line, the
// environment (MCUTIE_<FLAG_NAME>), the --config file, the default. Every
// source goes through the flag's Value, so a value is checked the same
// way wherever it is written, and its error names the key, what was
// wanted and what was given.

// envPrefix starts the environment variable of every flag: --max-inflight
// is MCUTIE_MAX_INFLIGHT.
const envPrefix = "MCUTIE_"

// envName is the environment variable that sets flag name.
func envName(name string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// envReserved reports whether the variable belongs to something other
// than a flag: the users of auth.PasswordsFromEnv (MCUTIE_USERS,
// MCUTIE_USER_<name>) and the Redis password read by redis.go, which
// keeps its own meaning (a fallback behind --redis-password-file).
func envReserved(key string) bool {
	return key == "MCUTIE_USERS" || strings.HasPrefix(key, "MCUTIE_USER_") || key == redisPasswordEnv
}

// defaultListen is --listen when none is given.
const defaultListen = "tcp://127.0.0.1:1883"

// loaded says where the settings came from, for the first log lines.
type loaded struct {
	file     string   // --config, "" without one
	fileKeys int      // keys of the file that set a flag (not overridden); -1 for a Mosquitto config
	env      []string // MCUTIE_ variables that set a flag
	unknown  []string // MCUTIE_ variables that name no flag (warned about)
}

// loadConfig reads the command line, the environment and the config file
// into cfg (through fs, made by newFlagSet(cfg)), then the profile, and
// checks the bounds. A flag.ErrHelp comes back as it is.
func loadConfig(fs *flag.FlagSet, args, environ []string, cfg *config) (loaded, error) {
	var ld loaded
	if err := fs.Parse(args); err != nil {
		return ld, flagError(err)
	}
	if fs.NArg() > 0 {
		// "mcutie my.yaml" would otherwise start an open default broker.
		return ld, fmt.Errorf("unexpected argument %q (a config file is --config FILE)", fs.Arg(0))
	}
	var err error
	if ld.env, ld.unknown, err = applyEnv(fs, environ); err != nil {
		return ld, err
	}
	if cfg.configFile != "" {
		ld.file = cfg.configFile
		if ld.fileKeys, err = applyConfigFile(fs, cfg.configFile); err != nil {
			return ld, err
		}
	}
	if err := applyProfile(fs, cfg.profile); err != nil {
		return ld, err
	}
	if err := checkLimits(cfg); err != nil {
		return ld, err
	}
	if len(cfg.listen) == 0 {
		cfg.listen = listFlag{defaultListen}
	}
	return ld, nil
}

// applyEnv sets every flag not given on the command line whose
// MCUTIE_<NAME> variable is in environ; a repeatable flag takes a
// comma-separated list. It returns the variables used and the MCUTIE_
// variables that name no flag (a typo must not pass unnoticed, but it is
// not worth refusing to start over: the caller warns).
func applyEnv(fs *flag.FlagSet, environ []string) (used, unknown []string, err error) {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	byEnv := map[string]*flag.Flag{}
	fs.VisitAll(func(f *flag.Flag) { byEnv[envName(f.Name)] = f })
	for _, kv := range environ {
		key, val, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(key, envPrefix) || envReserved(key) {
			continue
		}
		f := byEnv[key]
		if f == nil {
			unknown = append(unknown, key)
			continue
		}
		if given[f.Name] {
			continue
		}
		vals := []string{val}
		if _, ok := f.Value.(*listFlag); ok {
			vals = strings.Split(val, ",")
		}
		for _, v := range vals {
			if err := fs.Set(f.Name, strings.TrimSpace(v)); err != nil {
				return nil, nil, fmt.Errorf("environment %s: %w", key, explain(err, v))
			}
		}
		used = append(used, key)
	}
	return used, unknown, nil
}

// applyConfigFile sets every key of the YAML file whose flag was not
// given on the command line or in the environment, and returns how many
// it set. Keys are flag names; lists give repeatable flags.
func applyConfigFile(fs *flag.FlagSet, path string) (int, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("cannot read config file: %w", err)
	}
	if isMosquittoConf(path, raw) {
		// It logs what it carried over itself (mosquittoconf.go).
		return -1, applyMosquittoConf(fs, path, os.Stderr)
	}
	var m map[string]any
	if err := yaml.Unmarshal(raw, &m); err != nil {
		return 0, fmt.Errorf("cannot parse config file %s: %w", path, err)
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	n := 0
	for k, v := range m {
		f := fs.Lookup(k)
		if f == nil {
			return 0, fmt.Errorf("config file %s: unknown key %q (keys are flag names, see mcutie --help)", path, k)
		}
		if given[k] || k == "config" {
			continue
		}
		vals := []any{v}
		if list, ok := v.([]any); ok {
			vals = list
		}
		for _, x := range vals {
			s := flagText(x)
			if err := fs.Set(k, s); err != nil {
				return 0, fmt.Errorf("config file %s: key %q: %w", path, k, explain(err, s))
			}
		}
		n++
	}
	return n, nil
}

// flagText is a YAML value as a flag would be given it: a float that
// is a whole number without its exponent (YAML reads 1e6 as a float).
func flagText(x any) string {
	switch v := x.(type) {
	case nil:
		return ""
	case float64:
		if v == math.Trunc(v) && math.Abs(v) < 1<<53 {
			return strconv.FormatInt(int64(v), 10)
		}
		return strconv.FormatFloat(v, 'g', -1, 64)
	}
	return fmt.Sprint(x)
}

// flagErrorRE matches the flag package's error for a refused value.
var flagErrorRE = regexp.MustCompile(`^invalid value "(.*)" for flag -([^:]+): (.*)$`)

// flagError words a refused command-line value as the file and the
// environment do: the flag, what it wants, what it got.
func flagError(err error) error {
	m := flagErrorRE.FindStringSubmatch(err.Error())
	if m == nil {
		return err
	}
	if strings.HasPrefix(m[3], "want ") {
		return fmt.Errorf("flag --%s: %s, got %q", m[2], m[3], m[1])
	}
	return fmt.Errorf("flag --%s: %s", m[2], m[3])
}

// wantError is a flag value's refusal: what the flag wants. explain adds
// the value given.
type wantError struct{ want string }

func (e *wantError) Error() string { return "want " + e.want }

// explain turns a wantError into "want …, got "v"" (the flag package
// already quotes the value on the command line).
func explain(err error, v string) error {
	var we *wantError
	if errors.As(err, &we) {
		return fmt.Errorf("want %s, got %q", we.want, v)
	}
	return err
}

// checkedValue wraps a flag's Value so that a bad value is refused with
// what the flag wants ("want an integer") rather than strconv's "parse
// error", and a duration without a unit says so.
type checkedValue struct {
	flag.Value
	kind string // "int", "uint", "float", "duration"; "" checks nothing more
}

// checkedBool is checkedValue for a boolean flag (the flag package asks
// IsBoolFlag to allow --flag without a value).
type checkedBool struct{ checkedValue }

func (checkedBool) IsBoolFlag() bool { return true }

func (v checkedValue) Get() any {
	if g, ok := v.Value.(flag.Getter); ok {
		return g.Get()
	}
	return v.Value.String()
}

func (v checkedValue) Set(s string) error {
	switch v.kind {
	case "int":
		if _, err := strconv.ParseInt(s, 0, 64); err != nil {
			return rangeOr(err, "an integer")
		}
	case "uint":
		if _, err := strconv.ParseUint(s, 0, 64); err != nil {
			return rangeOr(err, "an integer of 0 or more")
		}
	case "float":
		if _, err := strconv.ParseFloat(s, 64); err != nil {
			return rangeOr(err, "a number")
		}
	case "bool":
		if _, err := strconv.ParseBool(s); err != nil {
			return &wantError{"true or false"}
		}
	case "duration":
		if _, err := time.ParseDuration(s); err != nil {
			if f, ferr := strconv.ParseFloat(s, 64); ferr == nil && f != 0 {
				return fmt.Errorf("%q: a duration needs a unit, e.g. %ss", s, s)
			}
			return &wantError{"a duration such as 10s, 500ms or 5m"}
		}
	}
	if err := v.Value.Set(s); err != nil {
		return rangeOr(err, "")
	}
	return nil
}

// rangeOr says "out of range" for strconv's range errors, else wants
// what.
func rangeOr(err error, what string) error {
	if errors.Is(err, strconv.ErrRange) {
		return &wantError{"a value within range (" + what + ")"}
	}
	if what == "" {
		return err
	}
	return &wantError{what}
}

// checkValues wraps every flag of fs (see checkedValue). Called once all
// flags are registered.
func checkValues(fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		g, ok := f.Value.(flag.Getter)
		switch f.Value.(type) {
		case byteSize[int], byteSize[int64], byteSize[float64], checkedValue, checkedBool:
			ok = false // explains itself, or wrapped already
		}
		if !ok {
			return
		}
		kind := ""
		switch g.Get().(type) {
		case int, int64:
			kind = "int"
		case uint, uint64:
			kind = "uint"
		case float64:
			kind = "float"
		case bool:
			f.Value = checkedBool{checkedValue{f.Value, "bool"}}
			return
		case time.Duration:
			kind = "duration"
		default:
			return // strings, byte sizes: their own Set explains
		}
		f.Value = checkedValue{f.Value, kind}
	})
}

// byteSize is a flag holding a number of bytes: "1048576", "64KiB",
// "1MiB", "1GB" (tuning.ParseBytes: KiB/MiB/GiB and K/M/G are powers of
// 1024, KB/MB/GB of 1000).
type byteSize[T ~int | ~int64 | ~float64] struct{ p *T }

// bytesVar defines a byte-size flag.
func bytesVar[T ~int | ~int64 | ~float64](fs *flag.FlagSet, p *T, name string, def T, usage string) {
	*p = def
	fs.Var(byteSize[T]{p}, name, usage)
}

func (b byteSize[T]) String() string {
	if b.p == nil {
		return "0"
	}
	return formatBytes(float64(*b.p))
}

func (b byteSize[T]) Get() any { return *b.p }

func (b byteSize[T]) Set(s string) error {
	n, err := tuning.ParseBytes(s)
	if err != nil {
		var zero T
		if _, isFloat := any(zero).(float64); isFloat {
			if f, ferr := strconv.ParseFloat(strings.TrimSpace(s), 64); ferr == nil && f >= 0 && !math.IsInf(f, 0) {
				*b.p = T(f)
				return nil
			}
		}
		return &wantError{"a size in bytes such as 65536, 64KiB, 1MiB or 1GB"}
	}
	var zero T
	switch any(zero).(type) {
	case int:
		if n > math.MaxInt {
			return &wantError{fmt.Sprintf("a size of at most %d bytes", math.MaxInt)}
		}
	}
	*b.p = T(n)
	return nil
}

// formatBytes writes n the way a person would: 1MiB, 64KiB, 1GiB when it
// is a whole multiple, else the number.
func formatBytes(n float64) string {
	if n != math.Trunc(n) {
		return strconv.FormatFloat(n, 'g', -1, 64)
	}
	i := int64(n)
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if i != 0 && i%u.m == 0 {
			return strconv.FormatInt(i/u.m, 10) + u.suffix
		}
	}
	return strconv.FormatInt(i, 10)
}
