// Package conf has what the plugins under hooks/ share to check their
// configuration.
package conf

import (
	"fmt"
	"net/url"
)

// FieldError is a configuration error in one field, named by its YAML
// path ("url", "rules[1].filter"): a config loader can point at the line
// that holds it (the FieldPath method; cmd/mcutie does).
type FieldError struct {
	Path string
	Err  error
}

func (e *FieldError) Error() string { return e.Path + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// FieldPath is the field's YAML path.
func (e *FieldError) FieldPath() string { return e.Path }

// Errorf returns a *FieldError for path.
func Errorf(path, format string, a ...any) error {
	return &FieldError{Path: path, Err: fmt.Errorf(format, a...)}
}

// CheckURL checks that s is an absolute http or https URL.
func CheckURL(path, s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return &FieldError{Path: path, Err: err}
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return Errorf(path, "%q is not an http:// or https:// URL", s)
	}
	return nil
}
