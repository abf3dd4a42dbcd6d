package main

import (
	"context"
	"reflect"
	"strings"
	"unicode"

	"github.com/golang/protobuf/proto"
	"google.golang.org/genproto/protobuf/field_mask"
	"google.golang.org/grpc"
)

// grpc-gateway 1.6 turns update_mask paths into Go field names ("DisplayName"),
// both when the mask comes from the query (?update_mask=display_name) and when it
// is derived from the fields present in the body. The API names fields the proto
// way ("display_name"), so normalizeFieldMasks maps each path back to proto field
// names before the call leaves the gateway:
//
//   - a path into a map field stops at the map ("Labels.Tier" -> "labels");
//   - "name" and "etag" at the top level are dropped: they identify the resource
//     and guard the write, they are never fields to change (a mask derived from a
//     body that carries the etag would otherwise name it).
func normalizeFieldMasks(ctx context.Context, method string, req, reply interface{},
	cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if m, ok := req.(proto.Message); ok {
		fixUpdateMask(m)
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

var fieldMaskType = reflect.TypeOf((*field_mask.FieldMask)(nil))

func fixUpdateMask(req proto.Message) {
	rv := reflect.ValueOf(req)
	if rv.Kind() != reflect.Ptr || rv.IsNil() || rv.Elem().Kind() != reflect.Struct {
		return
	}
	sv := rv.Elem()
	mf := sv.FieldByName("UpdateMask")
	if !mf.IsValid() || mf.Type() != fieldMaskType || mf.IsNil() {
		return
	}
	mask := mf.Interface().(*field_mask.FieldMask)
	if len(mask.Paths) == 0 {
		return
	}
	// The resource the mask applies to: the request's message field other than the mask.
	var resource reflect.Type
	for i := 0; i < sv.NumField(); i++ {
		sf := sv.Type().Field(i)
		if sf.Name == "UpdateMask" || strings.HasPrefix(sf.Name, "XXX_") {
			continue
		}
		if sf.Type.Kind() == reflect.Ptr && sf.Type.Implements(protoMessageType) && !isWellKnown(sf.Type) {
			resource = sf.Type.Elem()
			break
		}
	}
	seen := map[string]bool{}
	out := make([]string, 0, len(mask.Paths))
	for _, p := range mask.Paths {
		q := protoPath(resource, p)
		if q == "name" || q == "etag" || q == "" || seen[q] {
			continue
		}
		seen[q] = true
		out = append(out, q)
	}
	mask.Paths = out
}

// protoPath maps a dotted path of Go or proto field names onto proto field names
// of struct type t (nil when unknown: the parts are then only snake_cased).
func protoPath(t reflect.Type, path string) string {
	if path == "*" {
		return path
	}
	parts := strings.Split(path, ".")
	out := make([]string, 0, len(parts))
	cur := t
	for _, part := range parts {
		if cur == nil {
			out = append(out, snakeCase(part))
			continue
		}
		p := propByAnyName(cur, part)
		if p == nil {
			out = append(out, snakeCase(part))
			cur = nil
			continue
		}
		out = append(out, p.OrigName)
		sf, _ := cur.FieldByName(p.Name)
		ft := sf.Type
		if ft.Kind() == reflect.Map {
			break // map keys are not part of a field mask path
		}
		if ft.Kind() == reflect.Ptr && ft.Elem().Kind() == reflect.Struct && ft.Implements(protoMessageType) &&
			!isWellKnown(ft) {
			cur = ft.Elem()
		} else {
			cur = nil
		}
	}
	return strings.Join(out, ".")
}

func propByAnyName(st reflect.Type, name string) *proto.Properties {
	for _, p := range proto.GetProperties(st).Prop {
		if strings.HasPrefix(p.Name, "XXX_") {
			continue
		}
		if p.Name == name || p.OrigName == name || p.JSONName == name {
			return p
		}
	}
	return nil
}

// snakeCase turns "DisplayName" or "displayName" into "display_name".
func snakeCase(s string) string {
	var b strings.Builder
	for i, r := range s {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('_')
			}
			b.WriteRune(unicode.ToLower(r))
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}
