package archtest

import (
	"bytes"
	"encoding/json"
	"io"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/visitflow/visitflow"

// Third-party packages the rules name.
const (
	goRedis  = "github.com/redis/go-redis/v9"
	asynq    = "github.com/hibiken/asynq"
	twilioGo = "github.com/twilio/twilio-go"
)

// pkg is what `go list -json` says of a package.
type pkg struct {
	ImportPath string
	Standard   bool
	Imports    []string // non-test imports
	Deps       []string
	Module     *struct{ Path string }
}

// rule is one line of docs/architecture.md's "Import rules", checked
// against every package of the module (non-test imports only: tests may
// reach further).
type rule struct {
	text string
	// forbids reports whether package from must not import to (full import
	// paths; std: to is in the standard library).
	forbids func(from, to string, std bool) bool
}

var rules = []rule{
	{"leaf packages (internal/visit, internal/audit, twiml, internal/clock, internal/twiliosig, internal/redisurl, internal/panics, internal/gcpace) import only the standard library",
		func(from, _ string, std bool) bool {
			for _, leaf := range []string{"internal/visit", "internal/audit", "twiml", "internal/clock", "internal/twiliosig", "internal/redisurl", "internal/panics", "internal/gcpace"} {
				if from == module+"/"+leaf && !std {
					return true
				}
			}
			return false
		}},
	{"only internal/store, internal/redisx (and its test harness) and cmd import go-redis",
		func(from, to string, _ bool) bool {
			return within(to, goRedis) && !within(from, "internal/store") && !within(from, "internal/redisx") && !within(from, "cmd")
		}},
	{"handlers, internal/board and internal/joinpage import neither internal/store nor asynq nor go-redis",
		func(from, to string, _ bool) bool {
			edge := within(from, "handlers") || within(from, "internal/board") || within(from, "internal/joinpage")
			return edge && (to == module+"/internal/store" || within(to, asynq) || within(to, goRedis))
		}},
	{"internal/twilioapi does not import asynq (workflows decides about retries)",
		func(from, to string, _ bool) bool { return within(from, "internal/twilioapi") && within(to, asynq) }},
	{"only internal/twilioapi calls Twilio's REST API (twilio-go)",
		func(from, to string, _ bool) bool { return within(to, twilioGo) && !within(from, "internal/twilioapi") }},
	{"the emulator (internal/sandbox) imports no visitflow package: it plays Twilio and must not take Twilio's behaviour from our code",
		func(from, to string, _ bool) bool { return within(from, "internal/sandbox") && within(to, module) }},
	{"imports flow one way: handlers → workflows → internal/visit; no package below imports one above",
		func(from, to string, _ bool) bool {
			up := map[string][]string{
				"workflows":      {"handlers", "cmd", "internal/board"},
				"internal/store": {"workflows", "handlers", "cmd"},
				"internal/visit": {"internal/store", "workflows", "handlers"},
			}
			for low, highs := range up {
				for _, h := range highs {
					if within(from, low) && within(to, h) {
						return true
					}
				}
			}
			return false
		}},
}

// within reports whether import path p is pkg or below it; pkg is a path
// inside the module ("internal/store") or a full import path.
func within(p, pkg string) bool {
	if !strings.Contains(pkg, ".") {
		pkg = module + "/" + pkg
	}
	return p == pkg || strings.HasPrefix(p, pkg+"/")
}

func goList(t *testing.T, args ...string) []pkg {
	t.Helper()
	_, here, _, _ := runtime.Caller(0)
	cmd := exec.Command("go", append([]string{"list", "-deps", "-json"}, args...)...)
	cmd.Dir = filepath.Join(filepath.Dir(here), "..", "..")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps -json %v: %v\n%s", args, err, stderr.String())
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// TestImportRules fails when a package of the module imports what
// docs/architecture.md's import rules forbid.
func TestImportRules(t *testing.T) {
	pkgs := goList(t, "./...")
	std := map[string]bool{}
	for _, p := range pkgs {
		std[p.ImportPath] = p.Standard
	}
	checked := 0
	for _, p := range pkgs {
		if p.Module == nil || p.Module.Path != module {
			continue
		}
		checked++
		for _, to := range p.Imports {
			for _, r := range rules {
				if r.forbids(p.ImportPath, to, std[to]) {
					t.Errorf("%s imports %s; rule: %s", strings.TrimPrefix(p.ImportPath, module+"/"), to, r.text)
				}
			}
		}
	}
	if checked < 10 {
		t.Fatalf("go list found %d packages of %s; want the whole module", checked, module)
	}
}

// TestBinaryDoesNotLinkTesting: test harnesses live in their own packages
// (internal/redisx/redistest, internal/testenv), like net/http/httptest, so
// the production binary never links package testing.
func TestBinaryDoesNotLinkTesting(t *testing.T) {
	for _, cmd := range []string{"./cmd/visitflow"} {
		for _, p := range goList(t, cmd) {
			if p.ImportPath == "testing" {
				var via []string
				for _, q := range goList(t, cmd) {
					if slices.Contains(q.Imports, "testing") {
						via = append(via, q.ImportPath)
					}
				}
				t.Errorf("%s links package testing (imported by %v)", cmd, via)
			}
		}
	}
}
