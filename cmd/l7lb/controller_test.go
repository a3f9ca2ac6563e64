package main

import (
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"testing"

	"github.com/l7lb/l7lb/internal/config"
	"github.com/l7lb/l7lb/internal/runtime"
)

type noCerts struct{}

func (noCerts) Load(arn string) (tls.Certificate, error) {
	return tls.Certificate{}, errors.New("no certificate " + arn)
}

// TestRecordingApplier: every snapshot the controller applies is counted
// as a reload, refused ones as failed with the runtime's error.
func TestRecordingApplier(t *testing.T) {
	rt := runtime.New(runtime.Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Certs: noCerts{},
		Bind: func(config.Listener) string { return "127.0.0.1:0" }})
	type rec struct {
		ok  bool
		err error
	}
	var got []rec
	a := recordingApplier{rt, func(ok bool, err error) { got = append(got, rec{ok, err}) }}
	if err := a.Apply(&config.Snapshot{}); err != nil {
		t.Fatal(err)
	}
	bad := &config.Snapshot{Listeners: []config.Listener{{Port: 443, Protocol: config.ProtocolHTTPS, CertificateARNs: []string{"arn:x"}}}}
	errBad := a.Apply(bad)
	if errBad == nil {
		t.Fatal("a snapshot with an unknown certificate was applied")
	}
	if len(got) != 2 || !got[0].ok || got[0].err != nil || got[1].ok || got[1].err != errBad {
		t.Errorf("recorded %+v; want ok, then failed with %v", got, errBad)
	}
}
