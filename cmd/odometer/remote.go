package main

import (
	"flag"

	"github.com/odometerhq/odometer/client"
)

// remote is the server a client subcommand talks to, and the API key it
// sends. Both may come from the environment (ODOMETER_SERVER,
// ODOMETER_API_KEY), so that keys stay out of shell histories.
type remote struct {
	server, apiKey string
}

// remoteEnv selects the remote flags for environment variables.
var remoteEnv = only("server", "api-key")

func (r *remote) flags(fs *flag.FlagSet) {
	fs.StringVar(&r.server, "server", "http://127.0.0.1:8888", "server `URL`")
	fs.StringVar(&r.apiKey, "api-key", "", "API `key` (odo_…) sent as a bearer token; prefer $ODOMETER_API_KEY")
}

func (r *remote) client() *client.Client {
	var opts []client.Option
	if r.apiKey != "" {
		opts = append(opts, client.WithAPIKey(r.apiKey))
	}
	return client.New(r.server, opts...)
}
