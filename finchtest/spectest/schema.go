package spectest

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// docs holds parsed OpenAPI (or overlay) documents by name, so that a
// reference names its document: "management#/components/schemas/Error".
// A reference without a name ("#/...") points into the document it is in.
type docs map[string]map[string]any

// loadYAML parses YAML text into a document with string keys throughout.
func loadYAML(text []byte) (map[string]any, error) {
	var v any
	if err := yaml.Unmarshal(text, &v); err != nil {
		return nil, err
	}
	m, ok := normalize(v).(map[string]any)
	if !ok {
		return nil, fmt.Errorf("spectest: the document is not a mapping")
	}
	return m, nil
}

// loadDocs loads YAML documents from files, by name, plus the overlay
// document, named "finchmd".
func loadDocs(files map[string]string, overlay []byte) (docs, error) {
	d := docs{}
	for name, path := range files {
		m, err := loadFile(path)
		if err != nil {
			return nil, err
		}
		d[name] = m
	}
	m, err := loadYAML(overlay)
	if err != nil {
		return nil, fmt.Errorf("spectest: overlay: %w", err)
	}
	d["finchmd"] = m
	return d, nil
}

// schemaFor compiles the schema an answer is checked against: the spec's
// schema at base (a reference; "" for none) with the overlay document's
// entry key laid over it (none if key is "").
func (d docs) schemaFor(base, key string) (*schema, error) {
	var node any = map[string]any{}
	if base != "" {
		n, doc, err := d.resolve(base, "")
		if err != nil {
			return nil, err
		}
		if node, err = d.inline(n, doc, 0); err != nil {
			return nil, err
		}
	}
	if key != "" {
		o, ok := d["finchmd"][key]
		if !ok {
			return nil, fmt.Errorf("spectest: the overlay has no %q", key)
		}
		io, err := d.inline(o, "finchmd", 0)
		if err != nil {
			return nil, err
		}
		node = merge(node, io)
	}
	return compile(node)
}

// loadFile reads a YAML document from a file.
func loadFile(path string) (map[string]any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m, err := loadYAML(b)
	if err != nil {
		return nil, fmt.Errorf("spectest: %s: %w", path, err)
	}
	return m, nil
}

// normalize turns YAML mappings with non-string keys (such as an unquoted
// 200) into map[string]any.
func normalize(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = normalize(e)
		}
		return v
	case map[any]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			m[fmt.Sprint(k)] = normalize(e)
		}
		return m
	case []any:
		for i, e := range v {
			v[i] = normalize(e)
		}
	}
	return v
}

// ref builds a reference to a JSON answer's schema in an OpenAPI
// document: doc#/paths/<path>/<method>/responses/<status>/content/application~1json/schema.
func ref(doc, path, method, status string) string {
	return doc + "#/paths/" + escapePointer(path) + "/" + method + "/responses/" + status + "/content/application~1json/schema"
}

func escapePointer(s string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(s)
}

// resolve returns the node a reference points to, and the name of the
// document it is in.
func (d docs) resolve(ref, from string) (any, string, error) {
	name, pointer, ok := strings.Cut(ref, "#")
	if !ok {
		return nil, "", fmt.Errorf("spectest: reference %q has no #", ref)
	}
	if name == "" {
		name = from
	}
	var node any = d[name]
	if d[name] == nil {
		return nil, "", fmt.Errorf("spectest: reference %q: no document %q", ref, name)
	}
	for _, part := range strings.Split(strings.TrimPrefix(pointer, "/"), "/") {
		if part == "" {
			continue
		}
		part = strings.NewReplacer("~1", "/", "~0", "~").Replace(part)
		m, ok := node.(map[string]any)
		if !ok || m[part] == nil {
			return nil, "", fmt.Errorf("spectest: reference %q: no %q", ref, part)
		}
		node = m[part]
	}
	return node, name, nil
}

// inline returns a deep copy of node with every $ref replaced by what it
// points to. Keys beside a $ref are merged over the target (see merge), so
// an overlay can refine a spec schema it refers to.
func (d docs) inline(node any, from string, depth int) (any, error) {
	if depth > 64 {
		return nil, fmt.Errorf("spectest: references nest too deep (a cycle?)")
	}
	switch n := node.(type) {
	case map[string]any:
		out := make(map[string]any, len(n))
		for k, v := range n {
			if k == "$ref" {
				continue
			}
			iv, err := d.inline(v, from, depth+1)
			if err != nil {
				return nil, err
			}
			out[k] = iv
		}
		ref, ok := n["$ref"].(string)
		if !ok {
			return out, nil
		}
		target, doc, err := d.resolve(ref, from)
		if err != nil {
			return nil, err
		}
		t, err := d.inline(target, doc, depth+1)
		if err != nil {
			return nil, err
		}
		return merge(t, out), nil
	case []any:
		out := make([]any, len(n))
		for i, v := range n {
			iv, err := d.inline(v, from, depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = iv
		}
		return out, nil
	}
	return node, nil
}

// merge lays overlay over base: mappings merge key by key, "required"
// lists add up, anything else in overlay replaces what base has. An
// overlay mapping with "x-replace: true" replaces base whole.
func merge(base, overlay any) any {
	om, ok := overlay.(map[string]any)
	if !ok {
		return overlay
	}
	if om["x-replace"] == true {
		out := maps.Clone(om)
		delete(out, "x-replace")
		return out
	}
	bm, ok := base.(map[string]any)
	if !ok {
		return overlay
	}
	out := maps.Clone(bm)
	for k, v := range om {
		switch {
		case k == "required":
			out[k] = union(bm[k], v)
		case bm[k] != nil:
			out[k] = merge(bm[k], v)
		default:
			out[k] = v
		}
	}
	return out
}

func union(a, b any) []any {
	as, _ := a.([]any)
	bs, _ := b.([]any)
	out := slices.Clone(as)
	for _, v := range bs {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// schema is a compiled schema: the subset of OpenAPI 3.0 the Finch specs
// use. Objects are strict: a field the schema does not declare is an
// error, unless additionalProperties allows it or the object declares no
// properties at all (a free-form object).
type schema struct {
	typ        string // "" accepts any type
	nullable   bool
	enum       []any // nil: any value
	pattern    *regexp.Regexp
	format     string
	properties map[string]*schema // nil: a free-form object
	required   []string
	extra      bool // additionalProperties: true or a schema
	items      *schema
}

// keywords a schema may carry that do not constrain values.
var annotations = map[string]bool{
	"title": true, "description": true, "example": true, "examples": true, "default": true,
	"deprecated": true, "readOnly": true, "writeOnly": true,
}

// compile compiles an inlined schema node, flattening allOf.
func compile(node any) (*schema, error) {
	m, ok := node.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("spectest: a schema must be a mapping, not %T", node)
	}
	if all, ok := m["allOf"].([]any); ok {
		var acc any = map[string]any{}
		for _, part := range all {
			acc = merge(acc, flattenAllOf(part))
		}
		rest := maps.Clone(m)
		delete(rest, "allOf")
		return compile(merge(acc, rest))
	}
	s := &schema{}
	for k, v := range m {
		var err error
		switch {
		case k == "type":
			s.typ, ok = v.(string)
			if !ok {
				err = fmt.Errorf("type %v is not a string", v)
			}
		case k == "nullable":
			s.nullable = v == true
		case k == "enum":
			s.enum, ok = v.([]any)
			if !ok {
				err = fmt.Errorf("enum is not a list")
			}
		case k == "pattern":
			s.pattern, err = regexp.Compile(fmt.Sprint(v))
		case k == "format":
			s.format = fmt.Sprint(v)
		case k == "required":
			for _, r := range asList(v) {
				s.required = append(s.required, fmt.Sprint(r))
			}
		case k == "properties":
			props, isMap := v.(map[string]any)
			if !isMap {
				err = fmt.Errorf("properties is not a mapping")
				break
			}
			s.properties = make(map[string]*schema, len(props))
			for name, p := range props {
				if s.properties[name], err = compile(p); err != nil {
					err = fmt.Errorf("%s: %w", name, err)
					break
				}
			}
		case k == "items":
			s.items, err = compile(v)
		case k == "additionalProperties":
			s.extra = v != false
		case annotations[k] || strings.HasPrefix(k, "x-"):
		default:
			err = fmt.Errorf("unsupported keyword %q", k)
		}
		if err != nil {
			return nil, fmt.Errorf("spectest: %w", err)
		}
	}
	return s, nil
}

// flattenAllOf returns an allOf part with its own allOf merged in.
func flattenAllOf(part any) any {
	m, ok := part.(map[string]any)
	if !ok {
		return part
	}
	all, ok := m["allOf"].([]any)
	if !ok {
		return m
	}
	var acc any = map[string]any{}
	for _, p := range all {
		acc = merge(acc, flattenAllOf(p))
	}
	rest := maps.Clone(m)
	delete(rest, "allOf")
	return merge(acc, rest)
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

// decode decodes a JSON document for validate, keeping numbers exact.
func decode(b []byte) (any, error) {
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("spectest: trailing data after the JSON value")
	}
	return v, nil
}

var (
	uuidShape = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	dateShape = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)
)

// validate checks a decoded JSON value against s and returns one line per
// problem, each starting with the path of the value ("$" is the root).
func (s *schema) validate(v any, path string) []string {
	if v == nil {
		if s.nullable || (s.typ == "" && s.enum == nil && s.properties == nil) {
			return nil
		}
		return []string{path + ": null, but the schema is not nullable"}
	}
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, path+": "+fmt.Sprintf(format, args...)) }

	if s.typ != "" && !hasType(v, s.typ) {
		bad("%s, want %s", jsonType(v), s.typ)
		return errs
	}
	if s.enum != nil && !inEnum(v, s.enum) {
		bad("%v is not one of %v", v, s.enum)
	}
	if str, ok := v.(string); ok {
		if s.pattern != nil && !s.pattern.MatchString(str) {
			bad("%q does not match the pattern %s", str, s.pattern)
		}
		if msg := checkFormat(str, s.format); msg != "" {
			bad("%q is not a %s: %s", str, s.format, msg)
		}
	}
	switch v := v.(type) {
	case map[string]any:
		for _, r := range s.required {
			if _, ok := v[r]; !ok {
				bad("required field %q is missing", r)
			}
		}
		for _, k := range slices.Sorted(maps.Keys(v)) {
			p, known := s.properties[k]
			switch {
			case known:
				errs = append(errs, p.validate(v[k], path+"."+k)...)
			case s.properties != nil && !s.extra:
				bad("field %q is not in the schema", k)
			}
		}
	case []any:
		if s.items != nil {
			for i, e := range v {
				errs = append(errs, s.items.validate(e, path+"["+strconv.Itoa(i)+"]")...)
			}
		}
	}
	return errs
}

func hasType(v any, typ string) bool {
	switch typ {
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	case "string":
		_, ok := v.(string)
		return ok
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "number":
		_, ok := v.(json.Number)
		return ok
	case "integer":
		n, ok := v.(json.Number)
		if !ok {
			return false
		}
		_, err := strconv.ParseInt(string(n), 10, 64)
		return err == nil
	}
	return false
}

func jsonType(v any) string {
	switch v := v.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case string:
		return fmt.Sprintf("the string %q", v)
	case bool:
		return fmt.Sprintf("the boolean %v", v)
	case json.Number:
		return "the number " + string(v)
	}
	return fmt.Sprintf("%T", v)
}

func inEnum(v any, enum []any) bool {
	for _, e := range enum {
		switch v := v.(type) {
		case string:
			if s, ok := e.(string); ok && s == v {
				return true
			}
		case bool:
			if b, ok := e.(bool); ok && b == v {
				return true
			}
		case json.Number:
			if fmt.Sprint(e) == string(v) {
				return true
			}
		}
	}
	return false
}

// checkFormat checks the formats the specs use; others pass.
func checkFormat(s, format string) string {
	switch format {
	case "uuid":
		if !uuidShape.MatchString(s) {
			return "not 8-4-4-4-12 hexadecimal digits"
		}
	case "date-time":
		if _, err := time.Parse(time.RFC3339, s); err != nil {
			return "not RFC 3339"
		}
	case "date":
		if !dateShape.MatchString(s) {
			return "not YYYY-MM-DD"
		}
	case "uri":
		if u, err := url.Parse(s); err != nil || !u.IsAbs() || u.Host == "" {
			return "not an absolute URL"
		}
	}
	return ""
}
