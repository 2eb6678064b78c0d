// Package app is the composition root: it turns the config into each package's Options, picks backends with a
// plain switch, and owns the lifecycle (Start, Reload, Shutdown). It is the only package that imports config
// together with concrete backends.
package app
