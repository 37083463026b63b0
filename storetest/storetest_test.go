package storetest_test

import (
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/storetest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestPasses runs the suite on stores that keep the contract: the
// MemoryStore, fresh and shared by every subtest of two runs; the mutant
// harness without a bug, and with its listing in Go; and a store taking
// every liberty the contract allows.
func TestPasses(t *testing.T) {
	shared := new(finchreauth.MemoryStore)
	for _, c := range []struct {
		name     string
		runs     int
		newStore func(*testing.T) finchreauth.Store
	}{
		{"MemoryStore", 1, func(*testing.T) finchreauth.Store { return new(finchreauth.MemoryStore) }},
		{"SharedMemoryStore", 2, func(*testing.T) finchreauth.Store { return shared }},
		{"NoBug", 1, func(*testing.T) finchreauth.Store { return newMutant("") }},
		{"ListInGo", 1, func(*testing.T) finchreauth.Store { return newMutant("List in Go") }},
		{"Liberties", 1, func(*testing.T) finchreauth.Store { return liberties{new(finchreauth.MemoryStore)} }},
	} {
		t.Run(c.name, func(t *testing.T) {
			for range c.runs {
				storetest.Run(t, c.newStore)
			}
		})
	}
}

// mutants are the broken stores, each with the subtests that must fail on
// it.
var mutants = []struct {
	bug   string
	fails []string
}{
	// Rule 1: Get.
	{"Get keeps milliseconds", []string{"Get/RoundTrip/AllFields", "Get/RoundTrip/MicrosecondEdges"}},
	{"zero time is the Unix epoch", []string{"Get/RoundTrip/Empty", "Get/RoundTrip/TokenOnly"}},
	{"the Unix epoch is the zero time", []string{"Get/RoundTrip/UnixEpoch"}},
	{"Get sorts Fingerprints", []string{"Get/RoundTrip/Large"}},
	{"Data kept as text", []string{"Get/RoundTrip/BinaryData", "Get/RoundTrip/Large"}},
	{"an update keeps the Token when given none", []string{"Get/RoundTrip/AllFields"}},
	{"Get reports the Version Put was given", []string{"Get/RoundTrip/Empty"}},
	{"Get shares the caller's Data", []string{"Get/Copies"}},
	{"ids fold case", []string{"Independent", "Get/RoundTrip/UnusualID"}},
	// Rule 2: Put.
	{"Put returns the Version it was given", []string{"Put/Versions"}},
	{"Put ignores Version", []string{"Put/Conflict/Stale", "Put/Conflict/New/Version1", "Put/Race/Create", "Put/Race/Update"}},
	{"Put accepts a future Version", []string{"Put/Conflict/Future", "Put/Conflict/New/Version5"}},
	{"Put of Version 0 overwrites", []string{"Put/Conflict/Zero"}},
	{"Put creates at any Version", []string{"Put/Conflict/New/Version1", "Put/Conflict/New/Negative"}},
	{"a conflicting Put indexes its fingerprints", []string{"Put/Conflict/Stale", "Put/Race/Update"}},
	{"a conflict is another error, naming the token", []string{"Put/Conflict/Stale", "Put/Race/Create"}},
	{"check then act", []string{"Put/Race/Create", "Put/Race/Update", "Put/Race/Increment"}},
	// Rule 3: Lookup.
	{"Lookup forgets dropped fingerprints", []string{"Lookup/Fingerprints"}},
	{"Lookup indexes only the newest fingerprint", []string{"Lookup/Fingerprints"}},
	{"Lookup keeps the first owner", []string{"Lookup/Connections"}},
	{"a Lookup miss is no error", []string{"Lookup/NotFound"}},
	// Rule 4: List.
	{"List ignores Limit", []string{"List/Pages", "List/Start"}},
	{"List comes up short", []string{"List/Pages"}},
	{"List breaks ties by descending id", []string{"List/Since", "List/DueBy"}},
	{"List breaks ties with case folded", []string{"List/Since", "List/DueBy"}},
	{"List orders the Since list by Due", []string{"List/Since"}},
	{"List compares milliseconds", []string{"List/Since", "List/DueBy"}},
	{"List compares wall clocks", []string{"List/Since", "List/DueBy"}},
	{"List includes the cursor", []string{"List/Pages"}},
	{"List cursor ignores AfterID", []string{"List/Pages"}},
	{"List pages DueBy by Since", []string{"List/Pages", "List/DueBy"}},
	{"List excludes a Due equal to DueBy", []string{"List/DueBy"}},
	{"List selects a zero Since", []string{"List/Start"}},
	{"List selects a zero Due", []string{"List/Start"}},
	{"List keeps the first Put's times", []string{"List/Updates"}},
	{"List of Limit 0 lists everything", []string{"List/Limit"}},
	{"List leaves out Data", []string{"List/Since"}},
	{"List of Every lists the open episodes", []string{"List/Every", "List/Pages", "List/Updates"}},
	{"List of Every honours AfterTime", []string{"List/Every", "List/Pages"}},
	// Rule 5: done contexts and empty ids.
	{"ignores a done context", []string{"Context/Canceled/Get/Stored", "Context/DeadlineExceeded/Put/Create", "Context/Canceled/List/Since"}},
	{"only cancellation counts", []string{"Context/DeadlineExceeded/Lookup/Stored"}},
	{"a done context is a plain error", []string{"Context/Canceled/Get/Unknown", "Context/DeadlineExceeded/Put/Update"}},
	{"a done Put still writes", []string{"Context/Canceled/Put/Update", "Context/Canceled/Put/Create"}},
	{"Get of an empty id is ErrNotFound", []string{"Invalid/Get"}},
	{"Put of an empty id is ErrNotFound", []string{"Invalid/Put/EmptyID"}},
	{"Lookup of an empty fingerprint is ErrNotFound", []string{"Invalid/Lookup"}},
	{"Put drops empty fingerprints", []string{"Invalid/Put/EmptyFingerprint/Create", "Invalid/Put/EmptyFingerprint/Only"}},
	{"Put indexes the fingerprints before an empty one", []string{"Invalid/Put/EmptyFingerprint/Create"}},
}

// failLines matches the lines naming the suite's failed subtests, each
// but the top.
var failLines = regexp.MustCompile(`(?m)^\s*--- FAIL: TestMutant/.*$`)

// mutantEnv tells a child test process which mutant to run the suite on.
const mutantEnv = "STORETEST_MUTANT"

// TestMutant runs the suite on a broken store; TestSuiteCatchesMutants runs
// it in a child process for each mutant and expects it to fail.
func TestMutant(t *testing.T) {
	bug := os.Getenv(mutantEnv)
	if bug == "" {
		t.Skip("run by TestSuiteCatchesMutants")
	}
	storetest.Run(t, func(*testing.T) finchreauth.Store { return newMutant(bug) })
}

func TestSuiteCatchesMutants(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process per mutant")
	}
	for _, m := range mutants {
		t.Run(m.bug, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(os.Args[0], "-test.run=^TestMutant$", "-test.count=1", "-test.timeout=2m")
			cmd.Env = append(os.Environ(), mutantEnv+"="+m.bug)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("the suite passed a store where %s (err %v)", m.bug, err)
			}
			for _, bad := range []string{"panic:", "DATA RACE", "test timed out"} {
				if strings.Contains(string(out), bad) {
					t.Fatalf("the suite crashed rather than failing on a store where %s:\n%s", m.bug, out)
				}
			}
			for _, name := range m.fails {
				failed := regexp.MustCompile(`--- FAIL: TestMutant/` + regexp.QuoteMeta(name) + `[ /]`)
				if !failed.Match(out) {
					t.Errorf("subtest %s passed a store where %s", name, m.bug)
				}
			}
			if strings.Contains(string(out), "storetest-secret-") {
				t.Errorf("the suite's output on a store where %s holds an access token", m.bug)
			}
			switch {
			case t.Failed():
				t.Logf("output:\n%s", out)
			case testing.Verbose():
				t.Logf("failed subtests:\n%s", strings.Join(failLines.FindAllString(string(out), -1), "\n"))
			}
		})
	}
}
