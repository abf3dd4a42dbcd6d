package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"

	"github.com/grpc-ecosystem/grpc-gateway/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	v1 "github.com/saasodoo/saasodoo/gen/go/saasodoo/v1"
)

// downloadPath matches GET /v1/tenants/{tenant}/backups/{backup}:download.
var downloadPath = regexp.MustCompile(`^/v1/tenants/([^/]+)/backups/([^/:]+):download$`)

// downloads serves BackupService.DownloadBackupPart as a file rather than the
// newline-delimited JSON grpc-gateway makes of a server stream: the part's raw
// bytes as application/octet-stream, named for saving. Other requests go on to
// next (the generated routes).
func (g *gateway) downloads(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m := downloadPath.FindStringSubmatch(r.URL.Path)
		if m == nil {
			next.ServeHTTP(w, r)
			return
		}
		if r.Method != http.MethodGet {
			g.otherError(w, r, "", http.StatusMethodNotAllowed)
			return
		}
		g.serveDownload(w, r, m[1], m[2])
	})
}

// safeFilenameByte says whether b may appear in the quoted filename of
// Content-Disposition as is; others become '_'.
func safeFilenameByte(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' ||
		b == '.' || b == '-' || b == '_'
}

// downloadFilename is "<tenant>-<backup>-<part>", kept to safe characters.
func downloadFilename(tenant, backup, part string) string {
	b := []byte(tenant + "-" + backup + "-" + part)
	for i := range b {
		if !safeFilenameByte(b[i]) {
			b[i] = '_'
		}
	}
	return string(b)
}

// serveDownload calls DownloadBackupPart with the caller's metadata (the
// Authorization header, the request id) as the generated handlers pass it, and
// copies the chunks to the response. A call that fails before the first chunk
// answers in the error shape of every other call; one that fails later cuts the
// response short (the connection is closed), so a client never takes a truncated
// part for a whole one.
func (g *gateway) serveDownload(w http.ResponseWriter, r *http.Request, tenant, backup string) {
	_, outbound := runtime.MarshalerForRequest(g.api, r)
	ctx, err := runtime.AnnotateContext(r.Context(), g.api, r)
	if err != nil {
		g.httpError(r.Context(), g.api, outbound, w, r, err)
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	part := r.URL.Query().Get("part")
	req := &v1.DownloadBackupPartRequest{
		Name: "tenants/" + tenant + "/backups/" + backup,
		Part: part,
	}
	stream, err := v1.NewBackupServiceClient(g.conn).DownloadBackupPart(ctx, req)
	if err != nil {
		g.httpError(ctx, g.api, outbound, w, r, err)
		return
	}
	first, err := stream.Recv()
	if err == io.EOF {
		err = status.Error(codes.Internal, "the server ended the download without sending the part")
	}
	if err != nil {
		g.httpError(ctx, g.api, outbound, w, r, err)
		return
	}

	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s"`,
		downloadFilename(tenant, backup, part)))
	h.Set("Content-Length", strconv.FormatInt(first.TotalSize, 10))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)

	var written int64
	for chunk := first; ; {
		if chunk.Offset != written || chunk.TotalSize != first.TotalSize ||
			written+int64(len(chunk.Data)) > first.TotalSize {
			g.abortDownload(r, req, fmt.Errorf("chunk at offset %d of %d bytes (total %d) does not follow byte %d of %d",
				chunk.Offset, len(chunk.Data), chunk.TotalSize, written, first.TotalSize))
		}
		if len(chunk.Data) > 0 {
			if _, err := w.Write(chunk.Data); err != nil {
				return // the client went away; the deferred cancel ends the call
			}
			written += int64(len(chunk.Data))
		}
		if chunk.Sha256 != "" {
			break // the last chunk
		}
		if chunk, err = stream.Recv(); err != nil {
			if err == io.EOF {
				err = fmt.Errorf("the stream ended without its last chunk")
			}
			g.abortDownload(r, req, err)
		}
	}
	// After the last chunk the server only sends the status.
	if _, err := stream.Recv(); err != io.EOF {
		if err == nil {
			err = fmt.Errorf("a chunk came after the last one")
		}
		g.abortDownload(r, req, err)
	}
	if written != first.TotalSize {
		g.abortDownload(r, req, fmt.Errorf("%d bytes received of %d", written, first.TotalSize))
	}
}

// abortDownload ends a download whose bytes have started: the response cannot
// say so any more, so the connection is dropped and the reason logged.
func (g *gateway) abortDownload(r *http.Request, req *v1.DownloadBackupPartRequest, err error) {
	logf("warn", "download cut short name=%s part=%q request_id=%s error=%q",
		req.Name, req.Part, r.Header.Get("X-Request-Id"), status.Convert(err).Message())
	panic(http.ErrAbortHandler)
}
