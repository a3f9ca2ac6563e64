package main

import (
	goruntime "runtime"
	"strings"
	"testing"
)

func TestProcsFlag(t *testing.T) {
	defer goruntime.GOMAXPROCS(goruntime.GOMAXPROCS(0))
	tests := []struct {
		flag, env string
		adapt     bool // a controller runs
		fixed     int  // GOMAXPROCS afterwards, when the flag fixes it
		err       string
	}{
		{flag: "auto", adapt: true},
		{flag: "auto", env: "3"},
		{flag: "1", fixed: 1},
		{flag: "0", err: "want auto or a number"},
		{flag: "many", err: "--procs \"many\""},
	}
	for _, tt := range tests {
		t.Run(tt.flag+"/"+tt.env, func(t *testing.T) {
			t.Setenv("GOMAXPROCS", tt.env)
			sf := serveFlags{procs: tt.flag}
			pol, err := sf.procsPolicy()
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (pol != nil) != tt.adapt {
				t.Fatalf("controller %v, want %v", pol != nil, tt.adapt)
			}
			if pol != nil && pol.Max != goruntime.GOMAXPROCS(0) {
				t.Fatalf("controller bound %d, want the runtime's %d", pol.Max, goruntime.GOMAXPROCS(0))
			}
			if tt.fixed != 0 && goruntime.GOMAXPROCS(0) != tt.fixed {
				t.Fatalf("GOMAXPROCS %d, want %d", goruntime.GOMAXPROCS(0), tt.fixed)
			}
		})
	}
}
