package classify

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"mime"
	"net/http"
	"path"
	"strings"
	"unicode/utf8"
)

// Generic bodies: non-JSON text, binary, and multipart/form-data uploads.

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// genericNonJSON makes a text body one Raw part and a binary body one
// attachment.
func genericNonJSON(r *Request) {
	if looksText(r.Body) {
		r.Parts = append(r.Parts, Part{Role: RoleUnknown, Text: string(r.Body), Start: 0, End: len(r.Body), Raw: true})
		return
	}
	r.Attachments = append(r.Attachments, Attachment{
		MediaType: http.DetectContentType(r.Body), Size: len(r.Body), SHA256: sha256Hex(r.Body),
	})
}

// looksText: valid UTF-8 without NUL and with few control characters.
func looksText(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	ctl := 0
	for _, c := range b {
		if c == 0 {
			return false
		}
		if c < 0x20 && c != '\n' && c != '\r' && c != '\t' && c != '\f' {
			ctl++
		}
	}
	return ctl*100 <= len(b)
}

var extMedia = map[string]string{
	".txt": "text/plain", ".md": "text/markdown", ".csv": "text/csv", ".tsv": "text/tab-separated-values",
	".json": "application/json", ".jsonl": "application/jsonl", ".xml": "application/xml", ".html": "text/html",
	".htm": "text/html", ".yaml": "application/yaml", ".yml": "application/yaml", ".toml": "application/toml",
	".pdf": "application/pdf", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
	".webp": "image/webp", ".mp3": "audio/mpeg", ".wav": "audio/wav", ".m4a": "audio/mp4", ".mp4": "video/mp4",
	".doc": "application/msword", ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
	".xls": "application/vnd.ms-excel", ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
	".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation", ".zip": "application/zip",
}

// codeExts are source and config files inspected as text.
var codeExts = map[string]bool{
	".go": true, ".py": true, ".js": true, ".ts": true, ".tsx": true, ".jsx": true, ".java": true, ".kt": true,
	".c": true, ".h": true, ".cc": true, ".cpp": true, ".hpp": true, ".cs": true, ".rs": true, ".rb": true,
	".php": true, ".swift": true, ".scala": true, ".sh": true, ".bash": true, ".ps1": true, ".sql": true,
	".r": true, ".m": true, ".lua": true, ".pl": true, ".tex": true, ".ini": true, ".cfg": true, ".conf": true,
	".env": true, ".log": true, ".properties": true, ".gradle": true, ".tf": true, ".css": true, ".scss": true,
	".vue": true, ".svelte": true, ".dockerfile": true, ".mk": true, ".proto": true, ".graphql": true,
	".rst": true, ".adoc": true, ".pem": true, ".key": true,
}

func mediaTypeByName(name string) string {
	ext := strings.ToLower(path.Ext(name))
	if mt, ok := extMedia[ext]; ok {
		return mt
	}
	if codeExts[ext] {
		return "text/plain"
	}
	return "application/octet-stream"
}

func isTextMedia(mt, name string) bool {
	switch {
	case strings.HasPrefix(mt, "text/"),
		mt == "application/json", mt == "application/jsonl", mt == "application/x-ndjson",
		mt == "application/xml", mt == "application/yaml", mt == "application/x-yaml", mt == "application/toml",
		mt == "application/javascript", mt == "application/x-sh", mt == "application/sql", mt == "application/csv":
		return true
	}
	ext := strings.ToLower(path.Ext(name))
	if codeExts[ext] {
		return true
	}
	switch ext {
	case ".txt", ".md", ".csv", ".tsv", ".json", ".jsonl", ".xml", ".html", ".htm", ".yaml", ".yml", ".toml":
		return true
	}
	return false
}

// multipartSkipFields are form fields that are settings, not content.
var multipartSkipFields = map[string]bool{
	"purpose": true, "model": true, "response_format": true, "temperature": true, "language": true,
	"stream": true, "n": true, "size": true, "quality": true, "timestamp_granularities[]": true,
	"expires_after[anchor]": true, "expires_after[seconds]": true, "background": true, "output_format": true,
}

// parseMultipart walks a multipart/form-data body by hand so that part
// offsets are known.
func parseMultipart(r *Request, boundary string) {
	body := r.Body
	if boundary == "" {
		r.Uninspectable = "malformed_multipart"
		return
	}
	delim := []byte("--" + boundary)
	i := bytes.Index(body, delim)
	if i < 0 {
		r.Uninspectable = "malformed_multipart"
		return
	}
	pos := i + len(delim)
	for n := 0; n < 10000; n++ {
		if bytes.HasPrefix(body[pos:], []byte("--")) {
			return
		}
		nl := bytes.IndexByte(body[pos:], '\n')
		if nl < 0 {
			break
		}
		hs := pos + nl + 1
		he, cs := -1, -1
		if k := bytes.Index(body[hs:], []byte("\r\n\r\n")); k >= 0 {
			he, cs = hs+k, hs+k+4
		}
		if k := bytes.Index(body[hs:], []byte("\n\n")); k >= 0 && (he < 0 || hs+k < he) {
			he, cs = hs+k, hs+k+2
		}
		if bytes.HasPrefix(body[hs:], []byte("\r\n")) {
			he, cs = hs, hs+2
		} else if bytes.HasPrefix(body[hs:], []byte("\n")) {
			he, cs = hs, hs+1
		}
		if he < 0 {
			break
		}
		k := bytes.Index(body[cs:], delim)
		if k < 0 {
			break
		}
		ce := cs + k
		next := ce + len(delim)
		if ce > cs && body[ce-1] == '\n' {
			ce--
			if ce > cs && body[ce-1] == '\r' {
				ce--
			}
		}
		multipartPart(r, body[hs:he], cs, ce)
		pos = next
	}
	r.Uninspectable = "malformed_multipart"
}

func multipartPart(r *Request, hdr []byte, cs, ce int) {
	var disp, ctype string
	for _, line := range strings.Split(string(hdr), "\n") {
		k, v, ok := strings.Cut(strings.TrimRight(line, "\r"), ":")
		if !ok {
			continue
		}
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "content-disposition":
			disp = strings.TrimSpace(v)
		case "content-type":
			ctype = strings.TrimSpace(v)
		}
	}
	_, dp, _ := mime.ParseMediaType(disp)
	name, filename := dp["name"], dp["filename"]
	content := r.Body[cs:ce]
	_, isFile := dp["filename"]
	if !isFile && ctype != "" && !strings.HasPrefix(ctype, "text/plain") {
		isFile = true
	}
	if !isFile {
		switch {
		case name == "model":
			r.Model = strings.TrimSpace(string(content))
		case name == "stream":
			r.Stream = strings.TrimSpace(string(content)) == "true"
		case multipartSkipFields[name]:
		case len(content) > 0 && utf8.Valid(content):
			r.Parts = append(r.Parts, Part{Role: RoleUser, Text: string(content), Start: cs, End: ce, Raw: true})
		}
		return
	}
	mt, _, _ := mime.ParseMediaType(ctype)
	if mt == "" || mt == "application/octet-stream" {
		if byName := mediaTypeByName(filename); byName != "application/octet-stream" || mt == "" {
			mt = byName
		}
	}
	a := Attachment{Name: filename, MediaType: mt, Size: len(content), SHA256: sha256Hex(content)}
	if isTextMedia(mt, filename) && looksText(content) {
		a.Inspected = true
		if len(content) > 0 {
			r.Parts = append(r.Parts, Part{Role: RoleUser, Text: string(content), Start: cs, End: ce, Raw: true})
		}
	}
	r.Attachments = append(r.Attachments, a)
}
