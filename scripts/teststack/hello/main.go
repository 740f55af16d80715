package main

import (
	"fmt"
	"runtime"
)

// Set with -ldflags -X by the Dockerfile's LDFLAGS default, to show how
// BuildKit unescapes ARG defaults.
var note, d string

func main() {
	fmt.Printf("Hello from %s/%s\n", runtime.GOOS, runtime.GOARCH)
	fmt.Printf("note=%q d=%q\n", note, d)
}
