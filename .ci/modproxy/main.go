// Command modproxy builds a Go module proxy, in the layout GOPROXY=file://
// reads, from the working tree of this repository: every published module,
// at the version the go.mod files require of each other. CI points GOPROXY
// at it to fetch the modules the way a user's go get would, before their
// tags exist (see RELEASING.md and .ci/modules.sh).
//
//	go run . [-repo DIR] -out DIR [-sums FILE] MODULE_DIR...
//
// Each MODULE_DIR names a published module by its directory in the
// repository ("." for the root). A module's files are those git lists as
// tracked, or untracked and not ignored, read from the working tree: what a
// commit of the tree would hold, uncommitted edits included. As the go
// command does, the files of nested modules are left out, and a module
// without a LICENSE of its own gets the root's.
//
// It fails, naming the go.mod, when a published module has a replace or
// exclude directive (go install refuses those), when a module's path does
// not match its directory (the directory is its tags' prefix), when the
// go.mod files require the published modules at more than one version, or
// when a module that is not published requires one without replacing it
// (it would not build from the tree without the workspace), or when go.work
// does not replace each published module at that version by its directory.
//
// It prints the version on standard output. With -sums, it also writes the
// go.sum lines of the modules it built: they hash this tree, so they are
// never committed.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/dirhash"
	"golang.org/x/mod/zip"
)

func main() {
	repo := flag.String("repo", "", "the repository's root (default: git's top level of the current directory)")
	out := flag.String("out", "", "the proxy directory to create; it must not exist or be empty")
	sums := flag.String("sums", "", "if set, write the go.sum lines of the modules built to this file")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: modproxy [-repo DIR] -out DIR [-sums FILE] MODULE_DIR...")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *out == "" || flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	version, err := run(*repo, *out, *sums, flag.Args())
	if err != nil {
		fmt.Fprintln(os.Stderr, "modproxy:", err)
		os.Exit(1)
	}
	fmt.Println(version)
}

// A goMod is one go.mod file of the repository.
type goMod struct {
	dir  string // its directory in the repository, slash-separated; "." for the root
	data []byte
	file *modfile.File
}

func (m *goMod) path() string { return m.file.Module.Mod.Path }

func (m *goMod) name() string { return path.Join(m.dir, "go.mod") }

func run(repo, out, sumsFile string, dirs []string) (string, error) {
	if repo == "" {
		top, err := git(".", "rev-parse", "--show-toplevel")
		if err != nil {
			return "", err
		}
		repo = strings.TrimSpace(top)
	}
	files, err := listFiles(repo)
	if err != nil {
		return "", err
	}
	mods, err := readGoMods(repo, files)
	if err != nil {
		return "", err
	}
	published, err := publishedMods(mods, dirs)
	if err != nil {
		return "", err
	}
	version, err := requiredVersion(mods, published)
	if err != nil {
		return "", err
	}
	if err := checkWorkspace(repo, published, version); err != nil {
		return "", err
	}
	if err := emptyDir(out); err != nil {
		return "", err
	}
	t := commitTime(repo)
	var sums bytes.Buffer
	for _, m := range published {
		if err := build(repo, out, m, version, t, files, &sums); err != nil {
			return "", fmt.Errorf("%s: %w", m.path(), err)
		}
	}
	if sumsFile != "" {
		if err := os.WriteFile(sumsFile, sums.Bytes(), 0o644); err != nil {
			return "", err
		}
	}
	return version, nil
}

// listFiles returns the files git lists as tracked, or untracked and not
// ignored, that are in the working tree, relative to repo, slash-separated.
func listFiles(repo string) ([]string, error) {
	outp, err := git(repo, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	if err != nil {
		return nil, err
	}
	var files []string
	for _, p := range strings.Split(outp, "\x00") {
		if p == "" {
			continue
		}
		if _, err := os.Lstat(filepath.Join(repo, filepath.FromSlash(p))); errors.Is(err, os.ErrNotExist) {
			continue // deleted in the working tree, not yet in a commit
		}
		files = append(files, p)
	}
	sort.Strings(files)
	return slices.Compact(files), nil
}

func readGoMods(repo string, files []string) (map[string]*goMod, error) {
	mods := make(map[string]*goMod)
	for _, p := range files {
		if path.Base(p) != "go.mod" {
			continue
		}
		data, err := os.ReadFile(filepath.Join(repo, filepath.FromSlash(p)))
		if err != nil {
			return nil, err
		}
		f, err := modfile.Parse(p, data, nil)
		if err != nil {
			return nil, err
		}
		if f.Module == nil {
			return nil, fmt.Errorf("%s: no module directive", p)
		}
		mods[path.Dir(p)] = &goMod{dir: path.Dir(p), data: data, file: f}
	}
	if mods["."] == nil {
		return nil, errors.New("the repository has no go.mod at its root")
	}
	return mods, nil
}

// publishedMods returns the modules in dirs, checking that each can be
// published: its path is the root's joined with its directory, and its
// go.mod has no replace or exclude directive.
func publishedMods(mods map[string]*goMod, dirs []string) ([]*goMod, error) {
	root := mods["."].path()
	var published []*goMod
	for _, d := range dirs {
		m := mods[path.Clean(filepath.ToSlash(d))]
		if m == nil {
			return nil, fmt.Errorf("%s: no go.mod there", d)
		}
		if want := path.Join(root, m.dir); m.dir != "." && m.path() != want {
			return nil, fmt.Errorf("%s: module %s, want %s: the directory is the prefix of its tags", m.name(), m.path(), want)
		}
		if len(m.file.Replace) > 0 || len(m.file.Exclude) > 0 {
			return nil, fmt.Errorf("%s: a replace or exclude directive in a published module: go install and users' builds refuse or ignore it", m.name())
		}
		published = append(published, m)
	}
	return published, nil
}

// requiredVersion returns the one version at which the go.mod files of the
// repository require the published modules.
func requiredVersion(mods map[string]*goMod, published []*goMod) (string, error) {
	root := mods["."].path()
	isPublished := make(map[string]bool)
	for _, m := range published {
		isPublished[m.path()] = true
	}
	dirs := make([]string, 0, len(mods))
	for d := range mods {
		dirs = append(dirs, d)
	}
	sort.Strings(dirs)
	where := make(map[string][]string) // version -> the go.mod files that require it
	for _, d := range dirs {
		m := mods[d]
		for _, r := range m.file.Require {
			p := r.Mod.Path
			if p != root && !strings.HasPrefix(p, root+"/") {
				continue
			}
			if !isPublished[p] {
				return "", fmt.Errorf("%s: requires %s, which is not a published module", m.name(), p)
			}
			if !isPublished[m.path()] && !replaces(m.file, p) {
				return "", fmt.Errorf("%s: requires %s without a replace: a module that is not published builds from the tree", m.name(), p)
			}
			where[r.Mod.Version] = append(where[r.Mod.Version], m.name()+" ("+p+")")
		}
	}
	switch len(where) {
	case 0:
		return "", errors.New("no go.mod requires a published module: no version to build")
	case 1:
	default:
		var b strings.Builder
		for _, v := range slices.Sorted(maps.Keys(where)) {
			fmt.Fprintf(&b, "\n\t%s: %s", v, strings.Join(where[v], ", "))
		}
		return "", fmt.Errorf("the go.mod files require the published modules at more than one version; release them together at one:%s", b.String())
	}
	v := slices.Collect(maps.Keys(where))[0]
	if module.CanonicalVersion(v) != v || module.IsPseudoVersion(v) {
		return "", fmt.Errorf("required version %s is not a release version (vMAJOR.MINOR.PATCH)", v)
	}
	return v, nil
}

// checkWorkspace checks that go.work, if there is one, replaces each
// published module at version v by its directory: without it, the
// workspace would fetch v instead of building the tree.
func checkWorkspace(repo string, published []*goMod, v string) error {
	data, err := os.ReadFile(filepath.Join(repo, "go.work"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	wf, err := modfile.ParseWork("go.work", data, nil)
	if err != nil {
		return err
	}
	for _, m := range published {
		ok := false
		for _, r := range wf.Replace {
			if r.Old.Path == m.path() && r.Old.Version == v && r.New.Version == "" && path.Clean(r.New.Path) == m.dir {
				ok = true
			}
		}
		if !ok {
			return fmt.Errorf("go.work: no \"replace %s %s => ./%s\": the workspace would fetch %s instead of using the tree", m.path(), v, m.dir, v)
		}
	}
	return nil
}

func replaces(f *modfile.File, p string) bool {
	for _, r := range f.Replace {
		if r.Old.Path == p {
			return true
		}
	}
	return false
}

// build writes m at version v into the proxy at out, and its go.sum lines
// to sums.
func build(repo, out string, m *goMod, v string, t time.Time, files []string, sums *bytes.Buffer) error {
	mv := module.Version{Path: m.path(), Version: v}
	escPath, err := module.EscapePath(mv.Path)
	if err != nil {
		return err
	}
	escVersion, err := module.EscapeVersion(v)
	if err != nil {
		return err
	}
	dir := filepath.Join(out, filepath.FromSlash(escPath), "@v")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	base := filepath.Join(dir, escVersion)

	zipFiles := moduleFiles(repo, m.dir, files)
	zf, err := os.Create(base + ".zip")
	if err != nil {
		return err
	}
	if err := zip.Create(zf, mv, zipFiles); err != nil {
		zf.Close()
		return err
	}
	if err := zf.Close(); err != nil {
		return err
	}
	zipSum, err := dirhash.HashZip(base+".zip", dirhash.Hash1)
	if err != nil {
		return err
	}
	modSum, err := dirhash.Hash1([]string{"go.mod"}, func(string) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(m.data)), nil
	})
	if err != nil {
		return err
	}

	info, err := json.Marshal(struct {
		Version string
		Time    time.Time
	}{v, t})
	if err != nil {
		return err
	}
	for name, data := range map[string][]byte{
		base + ".info":             info,
		base + ".mod":              m.data,
		filepath.Join(dir, "list"): []byte(v + "\n"),
	} {
		if err := os.WriteFile(name, data, 0o644); err != nil {
			return err
		}
	}
	fmt.Fprintf(sums, "%s %s %s\n%s %s/go.mod %s\n", mv.Path, v, zipSum, mv.Path, v, modSum)
	fmt.Fprintf(os.Stderr, "modproxy: %s@%s from %s/ (%d files) %s\n", mv.Path, v, m.dir, len(zipFiles), zipSum)
	return nil
}

// moduleFiles returns the files under dir, named relative to it; zip.Create
// leaves out those of nested modules. Without a LICENSE of its own, a module
// gets the root's, as the go command gives it.
func moduleFiles(repo, dir string, files []string) []zip.File {
	prefix := ""
	if dir != "." {
		prefix = dir + "/"
	}
	var zfs []zip.File
	haveLicense := false
	for _, p := range files {
		rel, ok := strings.CutPrefix(p, prefix)
		if !ok {
			continue
		}
		haveLicense = haveLicense || rel == "LICENSE"
		zfs = append(zfs, diskFile{rel: rel, abs: filepath.Join(repo, filepath.FromSlash(p))})
	}
	if !haveLicense && slices.Contains(files, "LICENSE") {
		zfs = append(zfs, diskFile{rel: "LICENSE", abs: filepath.Join(repo, "LICENSE")})
	}
	return zfs
}

// A diskFile is a file of the working tree, as zip.Create takes it.
type diskFile struct{ rel, abs string }

func (f diskFile) Path() string                 { return f.rel }
func (f diskFile) Lstat() (os.FileInfo, error)  { return os.Lstat(f.abs) }
func (f diskFile) Open() (io.ReadCloser, error) { return os.Open(f.abs) }

// emptyDir creates dir, or checks that it is empty: a proxy never serves
// what an earlier run left.
func emptyDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	if len(entries) > 0 {
		return fmt.Errorf("%s is not empty", dir)
	}
	return nil
}

// commitTime returns the time of the commit checked out, the time the
// .info files give; now if there is none.
func commitTime(repo string) time.Time {
	outp, err := git(repo, "log", "-1", "--format=%cI")
	if err != nil {
		return time.Now().UTC().Truncate(time.Second)
	}
	t, err := time.Parse(time.RFC3339, strings.TrimSpace(outp))
	if err != nil {
		return time.Now().UTC().Truncate(time.Second)
	}
	return t.UTC()
}

func git(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	outp, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(outp), nil
}
