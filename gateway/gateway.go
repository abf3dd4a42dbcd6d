package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"net/textproto"
	"strings"
	"sync"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	// Registers google.rpc.BadRequest and friends so error details sent by the
	// server in grpc-status-details-bin can be written out as JSON.
	_ "google.golang.org/genproto/googleapis/rpc/errdetails"

	"github.com/saasodoo/saasodoo/gen/go/gwservices"
	openapi "github.com/saasodoo/saasodoo/gen/go/openapi"
)

type gateway struct {
	cfg    *config
	conn   *grpc.ClientConn
	api    *runtime.ServeMux
	health grpc_health_v1.HealthClient

	mu      sync.Mutex
	streams map[*streamEntry]struct{}
}

type streamEntry struct{ cancel context.CancelFunc }

func newGateway(ctx context.Context, cfg *config) (*gateway, error) {
	// One HTTP/2 connection to the server carries every call. Dialing does not
	// block: while the server is down calls fail with UNAVAILABLE (503) and
	// /healthz says so.
	transport := grpc.WithInsecure()
	if cfg.backendCAs != nil {
		// The backend's certificate must chain to --backend-ca and name the host of
		// --backend.
		transport = grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{
			RootCAs:    cfg.backendCAs,
			MinVersion: tls.VersionTLS12,
		}))
	}
	conn, err := grpc.DialContext(ctx, cfg.backend,
		transport,
		grpc.WithUserAgent("saasodoo-gateway/"+version),
		grpc.WithChainUnaryInterceptor(normalizeFieldMasks),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20)),
	)
	if err != nil {
		return nil, fmt.Errorf("cannot set up the connection to %s: %v", cfg.backend, err)
	}
	g := &gateway{
		cfg:     cfg,
		conn:    conn,
		health:  grpc_health_v1.NewHealthClient(conn),
		streams: make(map[*streamEntry]struct{}),
	}
	runtime.HTTPError = g.httpError
	runtime.OtherErrorHandler = g.otherError
	g.api = runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, newStrictJSON()),
		runtime.WithIncomingHeaderMatcher(incomingHeader),
		runtime.WithOutgoingHeaderMatcher(outgoingHeader),
	)
	// Every service's handlers are generated from its google.api.http annotations
	// (*.pb.gw.go) and listed in gwservices at build time: a new RPC or service
	// needs no code here.
	for _, s := range gwservices.All {
		if err := s.Register(ctx, g.api, conn); err != nil {
			conn.Close()
			return nil, fmt.Errorf("registering %s: %v", s.Name, err)
		}
	}
	return g, nil
}

func (g *gateway) close() { g.conn.Close() }

// handler assembles the routes and the middleware every request passes through,
// outermost first: request id, access log, CORS, then the route.
func (g *gateway) handler() http.Handler {
	mux := http.NewServeMux()
	// Backup downloads are answered as files before the generated routes see them.
	mux.Handle("/v1/", g.limitBody(g.downloads(g.trackStreams(g.api))))
	mux.HandleFunc("/openapi.json", serveOpenAPI)
	mux.HandleFunc("/healthz", g.healthz)
	mux.Handle("/", staticHandler(g.cfg.frontendDir))

	var h http.Handler = mux
	h = corsHandler(g.cfg.corsOrigins, h)
	if g.cfg.accessLog {
		h = accessLog(h)
	}
	return withRequestID(h)
}

// incomingHeader picks the request headers that become gRPC metadata.
// Authorization is forwarded by grpc-gateway itself (as "authorization"), so it
// is left out here to avoid sending it twice; x-forwarded-for and
// x-forwarded-host are added by grpc-gateway from the connection.
func incomingHeader(key string) (string, bool) {
	key = textproto.CanonicalMIMEHeaderKey(key)
	switch {
	case key == "X-Request-Id":
		return "x-request-id", true
	case strings.HasPrefix(key, runtime.MetadataHeaderPrefix):
		return strings.ToLower(key[len(runtime.MetadataHeaderPrefix):]), true
	}
	return "", false
}

// outgoingHeader picks the server's response metadata that becomes HTTP
// headers. x-request-id is already set on the response by withRequestID (with
// the same value the server was given).
// Transport headers (content-type, grpc-*) are not passed on either.
func outgoingHeader(key string) (string, bool) {
	k := strings.ToLower(key)
	if k == "x-request-id" || k == "content-type" || strings.HasPrefix(k, "grpc-") {
		return "", false
	}
	return runtime.MetadataHeaderPrefix + key, true
}

// errorBody is grpc-gateway's error shape: {"error","message","code","details"}.
type errorBody struct {
	Error   string        `json:"error"`
	Message string        `json:"message"`
	Code    int32         `json:"code"`
	Details []interface{} `json:"details"`
}

func writeError(w http.ResponseWriter, httpStatus int, code codes.Code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(httpStatus)
	b, _ := json.Marshal(errorBody{Error: msg, Message: msg, Code: int32(code), Details: []interface{}{}})
	w.Write(b)
}

// httpError writes a failed call in grpc-gateway's shape, with the HTTP status
// that the gRPC code maps to. A call that never reached the server (it is down
// or unreachable) is said so in words.
func (g *gateway) httpError(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler,
	w http.ResponseWriter, r *http.Request, err error) {
	if s, ok := status.FromError(err); ok && s.Code() == codes.Unavailable && isTransportError(s.Message()) {
		err = status.Errorf(codes.Unavailable,
			"the saasodoo API server at %s cannot be reached; try again shortly (%s)",
			g.cfg.backend, s.Message())
	}
	runtime.DefaultHTTPError(ctx, mux, m, w, r, err)
}

func isTransportError(msg string) bool {
	return strings.HasPrefix(msg, "connection error") || strings.Contains(msg, "transport:") ||
		strings.Contains(msg, "connection closed")
}

// otherError answers requests that match no route (404) or use a method the route
// does not have (405), in the same JSON shape as every other error.
func (g *gateway) otherError(w http.ResponseWriter, r *http.Request, _ string, httpStatus int) {
	switch httpStatus {
	case http.StatusNotFound:
		writeError(w, httpStatus, codes.NotFound,
			fmt.Sprintf("no API method answers %s %s; see /openapi.json for the API", r.Method, r.URL.Path))
	case http.StatusMethodNotAllowed:
		writeError(w, httpStatus, codes.Unimplemented,
			fmt.Sprintf("%s is not allowed on %s; see /openapi.json for the methods it takes", r.Method, r.URL.Path))
	default:
		writeError(w, httpStatus, codes.InvalidArgument, http.StatusText(httpStatus))
	}
}

// trackStreams gives streaming calls (":watch") their own cancel function so that a
// graceful shutdown can end them at once, while unary calls are left to finish.
func (g *gateway) trackStreams(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, ":watch") {
			next.ServeHTTP(w, r)
			return
		}
		ctx, cancel := context.WithCancel(r.Context())
		e := &streamEntry{cancel: cancel}
		g.mu.Lock()
		g.streams[e] = struct{}{}
		g.mu.Unlock()
		defer func() {
			g.mu.Lock()
			delete(g.streams, e)
			g.mu.Unlock()
			cancel()
		}()
		// Proxies must not buffer the newline-delimited stream.
		w.Header().Set("X-Accel-Buffering", "no")
		w.Header().Set("Cache-Control", "no-store")
		sw := &streamErrorWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r.WithContext(ctx))
		sw.finish()
	})
}

// streamErrorWriter gives a stream that fails before its first message the same
// error body as every other call ({"error","message","code","details"}) instead
// of grpc-gateway's stream error line ({"error": {"grpc_code", ...}}). Errors
// after the first message stay lines of the stream.
type streamErrorWriter struct {
	http.ResponseWriter
	failed bool
	buf    []byte
}

func (s *streamErrorWriter) WriteHeader(code int) {
	if code >= 400 {
		s.failed = true
		s.Header().Del("Transfer-Encoding")
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *streamErrorWriter) Write(b []byte) (int, error) {
	if s.failed {
		s.buf = append(s.buf, b...)
		return len(b), nil
	}
	return s.ResponseWriter.Write(b)
}

func (s *streamErrorWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok && !s.failed {
		f.Flush()
	}
}

func (s *streamErrorWriter) finish() {
	if !s.failed {
		return
	}
	var line struct {
		Error struct {
			GrpcCode int32             `json:"grpc_code"`
			Message  string            `json:"message"`
			Details  []json.RawMessage `json:"details"`
		} `json:"error"`
	}
	if err := json.Unmarshal(s.buf, &line); err != nil || line.Error.Message == "" {
		s.ResponseWriter.Write(s.buf)
		return
	}
	details := make([]interface{}, 0, len(line.Error.Details))
	for _, d := range line.Error.Details {
		details = append(details, d)
	}
	b, _ := json.Marshal(errorBody{Error: line.Error.Message, Message: line.Error.Message,
		Code: line.Error.GrpcCode, Details: details})
	s.ResponseWriter.Write(b)
}

func (g *gateway) stopStreams() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for e := range g.streams {
		e.cancel()
	}
}

type healthBody struct {
	Status  string `json:"status"`
	Backend string `json:"backend"`
	Error   string `json:"error,omitempty"`
}

// healthz asks the backend's grpc.health.v1.Health/Check: 200 when it answers
// SERVING, 503 otherwise.
func (g *gateway) healthz(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		writeError(w, http.StatusMethodNotAllowed, codes.Unimplemented, "/healthz answers GET only")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	body := healthBody{Backend: g.cfg.backend}
	code := http.StatusServiceUnavailable
	resp, err := g.health.Check(ctx, &grpc_health_v1.HealthCheckRequest{})
	switch {
	case err != nil:
		body.Status = "UNREACHABLE"
		body.Error = status.Convert(err).Message()
	case resp.Status == grpc_health_v1.HealthCheckResponse_SERVING:
		body.Status = "SERVING"
		code = http.StatusOK
	default:
		body.Status = resp.Status.String()
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	b, _ := json.Marshal(body)
	w.Write(b)
}

func serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		writeError(w, http.StatusMethodNotAllowed, codes.Unimplemented, "/openapi.json answers GET only")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(openapi.Document)
}
