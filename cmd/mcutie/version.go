package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/mcutie/mcutie/monitor/promtext"
)

// version is the release, stamped by `make build` and release builds
// (-ldflags "-X main.version=…"); "dev" otherwise.
var version = "dev"

// buildInfo is what the binary knows of its own build: the version, and
// the commit and its time from the Go toolchain's VCS stamp (go build and
// go install in a git checkout record them).
type buildInfo struct {
	Version, Commit, Date, GoVersion string
	Modified                         bool
}

func readBuildInfo() buildInfo {
	b := buildInfo{Version: version, Commit: "unknown", Date: "unknown", GoVersion: runtime.Version()}
	if info, ok := debug.ReadBuildInfo(); ok {
		if b.Version == "dev" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			b.Version = info.Main.Version // go install module@version
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				b.Commit = s.Value
			case "vcs.time":
				b.Date = s.Value
			case "vcs.modified":
				b.Modified = s.Value == "true"
			}
		}
	}
	return b
}

// printVersion writes `mcutie --version`.
func printVersion(w io.Writer) {
	b := readBuildInfo()
	commit := b.Commit
	if b.Modified {
		commit += " (modified)"
	}
	fmt.Fprintf(w, "mcutie %s\ncommit %s\nbuilt %s\n%s %s/%s\nlicense Apache-2.0\n", b.Version, commit, b.Date, b.GoVersion, runtime.GOOS, runtime.GOARCH)
}

// mBuildInfo is the build's identity in /metrics.
var mBuildInfo = promtext.Gauge("mcutie_build_info", "The version, commit and Go version of the running binary (always 1).")

// writeBuildInfo writes mcutie_build_info for /metrics.
func writeBuildInfo(w io.Writer) {
	b := readBuildInfo()
	mBuildInfo.Header(w)
	mBuildInfo.Sample(w, promtext.Labels("version", b.Version, "commit", b.Commit, "goversion", b.GoVersion), 1)
}
