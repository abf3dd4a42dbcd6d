package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strings"

	"github.com/golang/protobuf/jsonpb"
	"github.com/golang/protobuf/proto"
	"github.com/grpc-ecosystem/grpc-gateway/runtime"
)

// strictJSON is grpc-gateway's JSONPb marshaler (proto field names, defaults
// emitted) with a decoder that refuses what the default one silently accepts:
// unknown fields. Its errors name the field, with its path from the top of the body.
type strictJSON struct {
	runtime.JSONPb
}

func newStrictJSON() *strictJSON {
	return &strictJSON{runtime.JSONPb{OrigName: true, EmitDefaults: true}}
}

func (m *strictJSON) NewDecoder(r io.Reader) runtime.Decoder {
	return &strictDecoder{dec: json.NewDecoder(r)}
}

func (m *strictJSON) Unmarshal(data []byte, v interface{}) error {
	return m.NewDecoder(bytes.NewReader(data)).Decode(v)
}

type strictDecoder struct {
	dec *json.Decoder
}

var protoMessageType = reflect.TypeOf((*proto.Message)(nil)).Elem()

// protoTarget finds the message to decode into: v itself, or *v when v is a
// pointer to a message pointer (as for a body mapped to one field, `body: "tenant"`),
// allocating the message when it is nil.
func protoTarget(v interface{}) (proto.Message, bool) {
	if m, ok := v.(proto.Message); ok {
		return m, true
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Ptr || rv.IsNil() || rv.Elem().Kind() != reflect.Ptr {
		return nil, false
	}
	el := rv.Elem()
	if !el.Type().Implements(protoMessageType) {
		return nil, false
	}
	if el.IsNil() {
		el.Set(reflect.New(el.Type().Elem()))
	}
	return el.Interface().(proto.Message), true
}

func (d *strictDecoder) Decode(v interface{}) error {
	var raw json.RawMessage
	if err := d.dec.Decode(&raw); err != nil {
		if err == io.EOF {
			return err // an empty body: the request message stays empty
		}
		return fmt.Errorf("the request body is not valid JSON: %v", err)
	}
	msg, ok := protoTarget(v)
	if !ok {
		return (&runtime.JSONPb{OrigName: true}).Unmarshal(raw, v)
	}
	if err := strictUnmarshal(raw, msg); err != nil {
		if named := explainBodyError(msg, raw, ""); named != nil {
			return named
		}
		return fmt.Errorf("the request body does not fit %s: %v", proto.MessageName(msg), err)
	}
	return nil
}

func strictUnmarshal(raw []byte, msg proto.Message) error {
	u := jsonpb.Unmarshaler{AllowUnknownFields: false}
	return u.Unmarshal(bytes.NewReader(raw), msg)
}

// fieldProps returns the properties of the field a JSON key names (proto name or
// lowerCamelCase JSON name), or nil.
func fieldProps(st reflect.Type, key string) *proto.Properties {
	for _, p := range proto.GetProperties(st).Prop {
		if strings.HasPrefix(p.Name, "XXX_") {
			continue
		}
		if p.OrigName == key || p.JSONName == key {
			return p
		}
	}
	return nil
}

func isWellKnown(t reflect.Type) bool {
	if !t.Implements(protoMessageType) {
		return false
	}
	m := reflect.New(t.Elem()).Interface().(proto.Message)
	return strings.HasPrefix(proto.MessageName(m), "google.protobuf.")
}

// explainBodyError looks for the first field of raw that msg rejects, checking
// each key on its own and descending into nested messages, and says which field
// it is and why. It returns nil when it cannot pin the error on one field.
func explainBodyError(msg proto.Message, raw json.RawMessage, prefix string) error {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		where := "the request body"
		if prefix != "" {
			where = fmt.Sprintf("field %q", strings.TrimSuffix(prefix, "."))
		}
		return fmt.Errorf("%s must be a JSON object holding the fields of %s", where, proto.MessageName(msg))
	}
	st := reflect.TypeOf(msg).Elem()
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		p := fieldProps(st, key)
		if p == nil {
			if _, oneof := proto.GetProperties(st).OneofTypes[key]; oneof {
				continue
			}
			return fmt.Errorf("unknown field %q in the request body: %s has no field named %q",
				prefix+key, proto.MessageName(msg), key)
		}
		one, _ := json.Marshal(map[string]json.RawMessage{key: obj[key]})
		single := reflect.New(st).Interface().(proto.Message)
		err := strictUnmarshal(one, single)
		if err == nil {
			continue
		}
		sf, _ := st.FieldByName(p.Name)
		ft := sf.Type
		val := bytes.TrimSpace(obj[key])
		switch {
		case ft.Kind() == reflect.Ptr && ft.Implements(protoMessageType) && !isWellKnown(ft) &&
			len(val) > 0 && val[0] == '{':
			sub := reflect.New(ft.Elem()).Interface().(proto.Message)
			if e := explainBodyError(sub, val, prefix+p.OrigName+"."); e != nil {
				return e
			}
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Ptr &&
			ft.Elem().Implements(protoMessageType) && !isWellKnown(ft.Elem()) && len(val) > 0 && val[0] == '[':
			var items []json.RawMessage
			if json.Unmarshal(val, &items) == nil {
				for i, it := range items {
					sub := reflect.New(ft.Elem().Elem()).Interface().(proto.Message)
					if e := explainBodyError(sub, it, fmt.Sprintf("%s%s[%d].", prefix, p.OrigName, i)); e != nil {
						return e
					}
				}
			}
		}
		return fmt.Errorf("invalid value for field %q: %v", prefix+p.OrigName, err)
	}
	return nil
}
