// Command upstream is the API every benchmarked proxy forwards to: it
// answers every request with a small JSON body and does nothing else, so
// that what is measured is the proxy in front of it.
package main

import (
	"flag"
	"log"
	"net/http"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18001", "listen address")
	flag.Parse()
	body := []byte(`{"ok":true}` + "\n")
	log.Fatal(http.ListenAndServe(*addr, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})))
}
