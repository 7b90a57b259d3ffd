package handlers_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hibiken/asynqmon"

	"github.com/visitflow/visitflow/handlers"
	"github.com/visitflow/visitflow/internal/board"
	"github.com/visitflow/visitflow/internal/browsertest"
	"github.com/visitflow/visitflow/internal/config"
	"github.com/visitflow/visitflow/internal/testenv"
	"github.com/visitflow/visitflow/workflows"
)

const cspAdminUser, cspAdminPass = "admin", "csp-test-pass"

// adminEnv mounts the board and the Asynq dashboard as serve.go does.
func adminEnv(t *testing.T) *testenv.Env {
	return testenv.New(t,
		testenv.Configure(func(c *config.Config) { c.Admin.Username, c.Admin.Password = cspAdminUser, cspAdminPass }),
		testenv.Server(func(e *testenv.Env, d *handlers.Deps) {
			d.Board = board.New(board.Options{Visits: e.Engine,
				Jobs: workflows.NewJobList(e.Inspector, workflows.QueueNames(e.Config.Redis.Namespace))})
			d.Dashboard = asynqmon.New(asynqmon.Options{RootPath: "/admin/queues", RedisConnOpt: e.Conn.Asynq, ReadOnly: true,
				PayloadFormatter: asynqmon.PayloadFormatterFunc(workflows.RedactPayload)})
		}))
}

// The admin pages sent no Content-Security-Policy: an injection that got
// past escaping would have run with a support person's session.
func TestAdminPagesSendAContentSecurityPolicy(t *testing.T) {
	e := adminEnv(t)
	e.CreateVisit(testenv.VisitBody("V-csp"))
	for _, path := range []string{"/admin/visits", "/admin/visits/V-csp", "/admin/queues", "/admin/queues/api/queues"} {
		req, _ := http.NewRequest(http.MethodGet, e.URL+path, nil)
		req.SetBasicAuth(cspAdminUser, cspAdminPass)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		csp := resp.Header.Get("Content-Security-Policy")
		if resp.StatusCode != http.StatusOK || csp == "" {
			t.Errorf("GET %s = %d, Content-Security-Policy %q; want 200 with a policy", path, resp.StatusCode, csp)
			continue
		}
		for _, want := range []string{"frame-ancestors 'none'", "base-uri 'none'", "default-src"} {
			if !strings.Contains(csp, want) {
				t.Errorf("GET %s: policy %q lacks %s", path, csp, want)
			}
		}
		if scripts := directive(csp, "script-src"); strings.Contains(scripts, "unsafe") {
			t.Errorf("GET %s: policy %q allows unsafe scripts (%s)", path, csp, scripts)
		}
	}
}

// directive returns the sources of one directive of a policy ("" if absent).
func directive(csp, name string) string {
	for _, d := range strings.Split(csp, ";") {
		if d = strings.TrimSpace(d); strings.HasPrefix(d, name+" ") {
			return d
		}
	}
	return ""
}

// The dashboard still works under its policy: its inline scripts are
// allowed by hash, so the React app renders in a real browser.
func TestDashboardRendersUnderItsPolicy(t *testing.T) {
	e := adminEnv(t)
	// A server of its own for the browser, started after the handler is
	// complete (testenv installs it on a server already running, which
	// the race detector cannot see ordered before a browser's request).
	srv := httptest.NewServer(e.Server.Config.Handler)
	t.Cleanup(srv.Close)
	dom := dumpDOM(t, strings.Replace(srv.URL, "http://", "http://"+cspAdminUser+":"+cspAdminPass+"@", 1)+"/admin/queues")
	root := dom[strings.Index(dom, `id="root"`):]
	if strings.HasPrefix(root, `id="root"></div>`) {
		t.Fatalf("the dashboard's React root is empty under the policy (a script was blocked):\n%.2000s", dom)
	}
}

// dumpDOM loads url in headless Chromium and returns the DOM after load,
// giving the dashboard's scripts time to render.
func dumpDOM(t *testing.T, url string) string {
	return browsertest.DumpDOM(t, url, "--virtual-time-budget=5000")
}
