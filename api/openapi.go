package api

import _ "embed"

// openAPIDocument describes every route; TestOpenAPIMatchesRoutes keeps it and the router in step.
//
//go:embed openapi.json
var openAPIDocument []byte
