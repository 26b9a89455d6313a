package archtest

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	line int
	cmd  string // upper case
	args string
}

// stage is the instructions from one FROM to the next.
type stage struct {
	name, image string
	ins         []instruction
}

func parseDockerfile(t *testing.T, path string) []stage {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var stages []stage
	var buf strings.Builder
	start := 0
	for n, line := range strings.Split(string(raw), "\n") {
		trimmed := strings.TrimSpace(line)
		if buf.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if buf.Len() == 0 {
			start = n + 1
		}
		if strings.HasSuffix(trimmed, "\\") {
			buf.WriteString(strings.TrimSuffix(trimmed, "\\") + " ")
			continue
		}
		buf.WriteString(trimmed)
		cmd, args, _ := strings.Cut(buf.String(), " ")
		buf.Reset()
		in := instruction{line: start, cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)}
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			st := stage{image: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.name = f[2]
			}
			stages = append(stages, st)
		}
		if len(stages) == 0 {
			t.Fatalf("%s:%d: %s before the first FROM", path, in.line, in.cmd)
		}
		stages[len(stages)-1].ins = append(stages[len(stages)-1].ins, in)
	}
	return stages
}

// TestDockerfile is a linter for the container image, in the spirit of hadolint (its rule ids where
// one applies), plus what this image must get right: a failed step fails the build, the server runs
// as a non-root user that owns its volume, a HEALTHCHECK the binary answers, and a build context
// without caches, data or built binaries. scripts/image-check runs the same steps for real.
func TestDockerfile(t *testing.T) {
	root := repoRoot(t)
	stages := parseDockerfile(t, filepath.Join(root, "Dockerfile"))
	var problems []string
	bad := func(in instruction, format string, args ...any) {
		problems = append(problems, fmt.Sprintf("Dockerfile:%d %s: %s", in.line, in.cmd, fmt.Sprintf(format, args...)))
	}
	names := map[string]bool{}
	for _, st := range stages {
		pipefail := false
		for _, in := range st.ins {
			switch in.cmd {
			case "FROM":
				img := strings.Fields(in.args)[0]
				if tag := img[strings.LastIndexAny(img, ":/")+1:]; !strings.Contains(img, "@") && (!strings.Contains(img, ":") || tag == "latest") {
					bad(in, "DL3006/DL3007: pin the base image to a tag other than latest: %s", img)
				}
			case "WORKDIR":
				if !strings.HasPrefix(in.args, "/") {
					bad(in, "DL3000: use an absolute WORKDIR")
				}
			case "SHELL":
				pipefail = strings.Contains(in.args, "pipefail")
			case "CMD", "ENTRYPOINT":
				if !strings.HasPrefix(in.args, "[") {
					bad(in, "DL3025: use the JSON (exec) form, so signals reach the server")
				}
			case "COPY":
				f := strings.Fields(in.args)
				if from, ok := strings.CutPrefix(f[0], "--from="); ok && !names[from] {
					bad(in, "COPY --from=%s names no earlier stage", from)
				}
			case "RUN":
				checkRun(in, pipefail, bad)
			}
		}
		names[st.name] = true
	}
	final := stages[len(stages)-1]
	checkFinalStage(t, root, final, bad)
	checkDockerignore(t, root, bad)
	for _, p := range problems {
		t.Error(p)
	}
}

// checkRun: nothing masks a failure, apt-get leaves no lists and no recommends, pipes fail.
func checkRun(in instruction, pipefail bool, bad func(instruction, string, ...any)) {
	for _, mask := range []string{"|| true", "|| :", "||true", "; true", "2>/dev/null", "|| exit 0"} {
		if strings.Contains(in.args, mask) {
			bad(in, "%q masks a failed step: the build must fail when a step does", mask)
		}
	}
	if strings.Contains(in.args, "apt-get install") {
		if !strings.Contains(in.args, "--no-install-recommends") {
			bad(in, "DL3015: apt-get install --no-install-recommends")
		}
		if !strings.Contains(in.args, " -y") {
			bad(in, "DL3014: apt-get install -y")
		}
		if !strings.Contains(in.args, "rm -rf /var/lib/apt/lists/*") {
			bad(in, "DL3009: remove /var/lib/apt/lists/* in the same RUN")
		}
	}
	if regexp.MustCompile(`[^|]\|[^|]`).MatchString(in.args) && !pipefail {
		bad(in, "DL4006: a pipe needs SHELL [\"/bin/bash\", \"-o\", \"pipefail\", \"-c\"] first")
	}
}

// checkFinalStage: a non-root numeric USER owns every VOLUME (created and chowned before it), the
// data directory is that volume, the HEALTHCHECK runs a command the binary has, EXPOSE is the
// configured port.
func checkFinalStage(t *testing.T, root string, st stage, bad func(instruction, string, ...any)) {
	t.Helper()
	var user, health *instruction
	var runs, env strings.Builder
	var volumes []instruction
	for i, in := range st.ins {
		switch in.cmd {
		case "USER":
			user = &st.ins[i]
		case "HEALTHCHECK":
			health = &st.ins[i]
		case "RUN":
			runs.WriteString(in.args + "\n")
		case "ENV":
			env.WriteString(in.args + " ")
		case "VOLUME":
			volumes = append(volumes, in)
			for _, v := range strings.Fields(strings.Trim(in.args, "[]")) {
				v = strings.Trim(v, `",`)
				created := regexp.MustCompile(`mkdir -p [^&;]*` + regexp.QuoteMeta(v) + `\b`).MatchString(runs.String())
				owner := ""
				if user != nil {
					owner = user.args
				}
				if !created || owner == "" || !strings.Contains(runs.String(), "chown "+owner+" "+v) {
					bad(in, "%s must be created and chowned to the USER (%q) before VOLUME: a new volume copies its owner, and the server must write there", v, owner)
				}
			}
		case "EXPOSE":
			cfg, err := os.ReadFile(filepath.Join(root, "configs", "lookalike.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			if m := regexp.MustCompile(`(?m)^\s+addr: "[^"]*:(\d+)"`).FindSubmatch(cfg); m == nil || string(m[1]) != in.args {
				bad(in, "EXPOSE %s is not the port of server.addr in configs/lookalike.yaml", in.args)
			}
		}
	}
	last := st.ins[len(st.ins)-1]
	switch {
	case user == nil:
		bad(last, "the final stage runs as root: set USER")
	case !regexp.MustCompile(`^[1-9][0-9]*:[1-9][0-9]*$`).MatchString(user.args):
		bad(*user, "USER %q: a numeric non-root uid:gid (Kubernetes' runAsNonRoot can only check a number)", user.args)
	}
	for _, v := range volumes {
		if !strings.Contains(env.String(), "LOOKALIKE_DATA_DIR="+strings.Trim(v.args, `[]" `)) {
			bad(v, "the volume is not the data directory (ENV LOOKALIKE_DATA_DIR)")
		}
	}
	if len(volumes) == 0 {
		bad(last, "no VOLUME for the data directory")
	}
	if health == nil {
		bad(last, "no HEALTHCHECK")
		return
	}
	m := regexp.MustCompile(`CMD \["lookalike", "([a-z]+)"`).FindStringSubmatch(health.args)
	if m == nil {
		bad(*health, "HEALTHCHECK CMD must run the binary in exec form: [\"lookalike\", \"SUBCOMMAND\", ...]")
		return
	}
	mainGo, err := os.ReadFile(filepath.Join(root, "cmd", "lookalike", "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(mainGo), `{"`+m[1]+`",`) {
		bad(*health, "lookalike has no %q command", m[1])
	}
}

// checkDockerignore: `COPY . .` ships neither machine-local caches and downloads, nor data, nor
// built binaries, nor the history; and every file a COPY names is shipped.
func checkDockerignore(t *testing.T, root string, bad func(instruction, string, ...any)) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatalf(".dockerignore: %v (without it `COPY . .` ships .cache, bin and data)", err)
	}
	ignored := map[string]bool{}
	for _, line := range strings.Split(string(raw), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			ignored[strings.TrimPrefix(line, "/")] = true
		}
	}
	at := instruction{cmd: "COPY . ."}
	for _, want := range []string{".git", ".cache", "bin", "data", "lookalike", "**/*.test"} {
		if !ignored[want] {
			bad(at, ".dockerignore must leave out %s", want)
		}
	}
	for _, st := range parseDockerfile(t, filepath.Join(root, "Dockerfile")) {
		for _, in := range st.ins {
			f := strings.Fields(in.args)
			if in.cmd != "COPY" || strings.HasPrefix(f[0], "--from=") {
				continue
			}
			for _, src := range f[:len(f)-1] {
				if src == "." {
					continue
				}
				if _, err := os.Stat(filepath.Join(root, src)); err != nil || ignored[src] {
					bad(in, "%s is not in the build context", src)
				}
			}
		}
	}
}
