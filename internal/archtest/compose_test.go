package archtest

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/lookalike/lookalike/internal/config"
)

// TestDockerCompose checks the three-node cluster example (docker-compose.yml, docs/cluster.md)
// without a container runtime: it parses (anchors and merge keys included), every environment
// variable is a configuration key the server accepts and yields a valid enabled cluster node, the
// routes name every node and each node advertises its own service name, and the node names, host
// ports and data volumes differ.
func TestDockerCompose(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	// The image keeps its data in /data (the Dockerfile's ENV): that is what each volume holds.
	const dataDir = "/data"
	if df, err := os.ReadFile(filepath.Join(repoRoot(t), "Dockerfile")); err != nil || !strings.Contains(string(df), "LOOKALIKE_DATA_DIR="+dataDir) {
		t.Fatalf("the Dockerfile no longer sets LOOKALIKE_DATA_DIR=%s (%v)", dataDir, err)
	}
	var f struct {
		Services map[string]struct {
			Build       any            `yaml:"build"`
			Image       string         `yaml:"image"`
			Environment map[string]any `yaml:"environment"`
			Ports       []string       `yaml:"ports"`
			Volumes     []string       `yaml:"volumes"`
		} `yaml:"services"`
		Volumes map[string]any `yaml:"volumes"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	if len(f.Services) != 3 {
		t.Fatalf("docker-compose.yml has %d services, want 3", len(f.Services))
	}
	var names, ports, vols []string
	for name, s := range f.Services {
		if s.Build == nil || s.Image == "" {
			t.Errorf("%s: no build or image", name)
		}
		var env []string
		for k, v := range s.Environment {
			if !strings.HasPrefix(k, "LOOKALIKE_") {
				t.Errorf("%s: environment %s is not a LOOKALIKE_ setting", name, k)
			}
			env = append(env, fmt.Sprintf("%s=%v", k, v))
		}
		cfg, err := config.Load("", env)
		if err != nil {
			t.Errorf("%s: its environment is refused: %v", name, err)
			continue
		}
		c := cfg.Cluster
		if !c.Enabled || c.NodeName != name || c.Advertise != name+":6222" {
			t.Errorf("%s: cluster enabled %v, node_name %q, advertise %q; want true, %q, %s:6222", name, c.Enabled, c.NodeName, c.Advertise, name, name)
		}
		for other := range f.Services {
			if !slices.Contains(c.Routes, other+":6222") {
				t.Errorf("%s: routes %v do not name %s:6222", name, c.Routes, other)
			}
		}
		_, port, _ := strings.Cut(cfg.Server.Addr, ":")
		for _, p := range s.Ports {
			host, container, _ := strings.Cut(p, ":")
			if container != port {
				t.Errorf("%s: port %s does not reach the server's %s", name, p, cfg.Server.Addr)
			}
			ports = append(ports, host)
		}
		for _, v := range s.Volumes {
			vol, mount, _ := strings.Cut(v, ":")
			if _, ok := f.Volumes[vol]; !ok || mount != dataDir {
				t.Errorf("%s: volume %s is not a named volume on the data directory %s", name, v, dataDir)
			}
			vols = append(vols, vol)
		}
		names = append(names, c.NodeName)
	}
	for what, l := range map[string][]string{"node names": names, "host ports": ports, "volumes": vols} {
		if len(l) != 3 || len(slices.Compact(slices.Sorted(slices.Values(l)))) != 3 {
			t.Errorf("%s %v: want 3 distinct", what, l)
		}
	}
}
