package cluster

import (
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// maxPayload is the largest message the embedded server accepts (NATS' recommended ceiling): a
// mutation carries its thumbnail and source rendition inline up to this size.
const maxPayload = 8 << 20

// clusterName names the embedded servers' NATS cluster.
const clusterName = "lookalike"

// hostPort splits "host:port"; port 0 becomes NATS' "pick a free port" (-1).
func hostPort(addr string) (string, int, error) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port in %q", addr)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	return h, port, nil
}

// routePing is the embedded server's route ping interval.
const routePing = 2 * time.Second

// startServer starts the embedded NATS server with JetStream and waits until it accepts clients.
func startServer(o Options, log *slog.Logger) (*server.Server, error) {
	host, port, err := hostPort(o.ClientAddr)
	if err != nil {
		return nil, fmt.Errorf("%w: client address: %v", ErrConfig, err)
	}
	opts := &server.Options{
		ServerName: o.NodeName,
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   o.StoreDir,
		MaxPayload: maxPayload,
		NoSigs:     true,
	}
	if o.ClusterAddr != "" {
		ch, cp, err := hostPort(o.ClusterAddr)
		if err != nil {
			return nil, fmt.Errorf("%w: cluster address: %v", ErrConfig, err)
		}
		// Route pings every 2 s, 3 unanswered close the route: a peer cut off without its
		// connections closing (a partition, not a kill) loses its queue-group interest within
		// about 6 s instead of the default's minutes, so requests stop going to its replicas.
		opts.Cluster = server.ClusterOpts{Name: clusterName, Host: ch, Port: cp, Advertise: o.Advertise,
			PingInterval: routePing, MaxPingsOut: 3}
		for _, r := range o.Routes {
			opts.Routes = append(opts.Routes, &url.URL{Scheme: "nats-route", Host: r})
		}
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("%w: nats server: %v", ErrConfig, err)
	}
	srv.SetLoggerV2(natsLogger{log}, false, false, false)
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("%w: embedded nats server did not start listening on %s", ErrUnavailable, o.ClientAddr)
	}
	return srv, nil
}

// natsLogger sends the NATS server's log lines to slog.
type natsLogger struct{ log *slog.Logger }

func (l natsLogger) Noticef(format string, v ...any) {
	l.log.Info(fmt.Sprintf(format, v...), "from", "nats")
}
func (l natsLogger) Warnf(format string, v ...any) {
	l.log.Warn(fmt.Sprintf(format, v...), "from", "nats")
}
func (l natsLogger) Fatalf(format string, v ...any) {
	l.log.Error(fmt.Sprintf(format, v...), "from", "nats")
}
func (l natsLogger) Errorf(format string, v ...any) {
	l.log.Error(fmt.Sprintf(format, v...), "from", "nats")
}
func (l natsLogger) Debugf(format string, v ...any) {
	l.log.Debug(fmt.Sprintf(format, v...), "from", "nats")
}
func (l natsLogger) Tracef(string, ...any) {}
