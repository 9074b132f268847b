package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// logConfig holds the --log-* flags but --log-level (main.go), and the
// level in force, which SIGHUP may change (reload.go).
type logConfig struct {
	format   string
	connRate float64

	level *slog.LevelVar // made by setupProcess
}

func logFlags(fs *flag.FlagSet, c *logConfig) {
	fs.StringVar(&c.format, "log-format", "text", "log line format: text (key=value, for people) or json (one JSON object a line, for log shippers)")
	fs.Float64Var(&c.connRate, "log-connections-rate", 100, "connect and disconnect lines logged per second at most (info: client id, address, user, protocol, listener, close reason), burst as large; beyond it they are counted and summed up in one line a second (0: not logged, at no cost; changed by SIGHUP unless it was 0 at start)")
}

// newLogger makes the process's logger writing to w in format, at the
// level held by level (changed in place on SIGHUP).
func newLogger(w io.Writer, format string, level *slog.LevelVar) (*slog.Logger, error) {
	o := &slog.HandlerOptions{Level: level}
	switch format {
	case "text", "":
		return slog.New(slog.NewTextHandler(w, o)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, o)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

// parseLevel reads --log-level.
func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("--log-level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

// logLoaded names, in the first log lines, where the settings came from:
// the config file and how many keys it set, the environment variables
// used, and a warning for MCUTIE_ variables that name no flag.
func logLoaded(log *slog.Logger, ld loaded) {
	switch {
	case ld.file != "" && ld.fileKeys < 0:
		log.Info("config file loaded", "file", ld.file, "format", "mosquitto")
	case ld.file != "":
		log.Info("config file loaded", "file", ld.file, "keys", ld.fileKeys)
	}
	if len(ld.env) > 0 {
		log.Info("settings from the environment", "variables", strings.Join(ld.env, ","))
	}
	for _, k := range ld.unknown {
		log.Warn("environment variable names no flag; ignored (see mcutie --help for the MCUTIE_ names)", "variable", k)
	}
}
