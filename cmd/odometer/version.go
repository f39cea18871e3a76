package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
)

// buildVersion may be set at link time: -ldflags "-X main.buildVersion=v1.2.3".
var buildVersion string

// runVersion prints "odometer <version> (<go version>)".
func runVersion(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "version", "version", only())
	args, err := parseFlags(fs, args, e.getenv, only())
	if err != nil {
		return err
	}
	if len(args) > 0 {
		return &usageError{err: fmt.Errorf("version takes no arguments; got %q", args)}
	}
	fmt.Fprintf(e.stdout, "odometer %s (%s)\n", version(), runtime.Version())
	return nil
}

// version returns the binary's version: the link-time version, else the
// module version (which since Go 1.24 encodes the VCS revision of a build in a
// repository), else "devel+<revision>" when the build recorded a revision
// ("-dirty" for a modified work tree), else "devel".
func version() string {
	info, ok := debug.ReadBuildInfo()
	switch {
	case buildVersion != "":
		return buildVersion
	case !ok:
		return "devel"
	case info.Main.Version != "" && info.Main.Version != "(devel)":
		return info.Main.Version
	}
	v := "devel"
	var dirty bool
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev := s.Value
			if len(rev) > 12 {
				rev = rev[:12]
			}
			v += "+" + rev
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if dirty && v != "devel" {
		v += "-dirty"
	}
	return v
}
