package spectest

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// testSchema is a schema with every construct the validator supports,
// written the way the Finch specs write them.
const testSchema = `
components:
  schemas:
    Status:
      enum: [connected, reauth]
    Named:
      type: object
      properties:
        name: {type: string, nullable: true}
    Thing:
      type: object
      allOf:
        - type: object
          properties:
            id: {type: string, format: uuid}
        - $ref: '#/components/schemas/Named'
      required: [id, count]
      properties:
        count: {type: integer}
        ratio: {type: number}
        ok: {type: boolean}
        status: {$ref: '#/components/schemas/Status'}
        phone: {type: string, pattern: '^\+[0-9]{11}$'}
        when: {type: string, format: date-time}
        url: {type: string, format: uri}
        tags: {type: array, items: {type: string}}
        free: {type: object}
        open:
          type: object
          properties:
            a: {type: string}
          additionalProperties: true
        anything: {}
`

func testDocs(t *testing.T, overlay string) docs {
	t.Helper()
	m, err := loadYAML([]byte(testSchema))
	if err != nil {
		t.Fatal(err)
	}
	o, err := loadYAML([]byte(overlay))
	if err != nil {
		t.Fatal(err)
	}
	return docs{"test": m, "finchmd": o}
}

const good = `{"id":"5d0b10a1-a09a-430f-81f1-20be735dc5e9","name":null,"count":3,"ratio":0.5,"ok":true,` +
	`"status":"reauth","phone":"+14155550100","when":"2025-01-02T03:04:05Z","url":"https://x.example/a",` +
	`"tags":["a"],"free":{"whatever":1},"open":{"a":"x","b":2},"anything":[1,"x",null]}`

// TestValidate shows that the validator catches each kind of drift, and
// accepts a conforming document.
func TestValidate(t *testing.T) {
	s, err := testDocs(t, "{}").schemaFor("test#/components/schemas/Thing", "")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		doc  string
		want string // a fragment of the one expected problem; "" for none
	}{
		{"conforming", good, ""},
		{"unknown field", strings.Replace(good, `"ok":true`, `"ok":true,"extra":1`, 1), `$: field "extra" is not in the schema`},
		{"missing required (from the top)", strings.Replace(good, `"count":3,`, ``, 1), `$: required field "count" is missing`},
		{"missing required (from allOf)", strings.Replace(good, `"id":"5d0b10a1-a09a-430f-81f1-20be735dc5e9",`, ``, 1), `$: required field "id" is missing`},
		{"string for integer", strings.Replace(good, `"count":3`, `"count":"3"`, 1), `$.count: the string "3", want integer`},
		{"fraction for integer", strings.Replace(good, `"count":3`, `"count":3.5`, 1), `$.count: the number 3.5, want integer`},
		{"string for boolean", strings.Replace(good, `"ok":true`, `"ok":"false"`, 1), `$.ok: the string "false", want boolean`},
		{"enum", strings.Replace(good, `"reauth"`, `"error_reauth"`, 1), `$.status: error_reauth is not one of [connected reauth]`},
		{"null not nullable", strings.Replace(good, `"count":3`, `"count":null`, 1), `$.count: null, but the schema is not nullable`},
		{"null enum", strings.Replace(good, `"status":"reauth"`, `"status":null`, 1), `$.status: null`},
		{"pattern", strings.Replace(good, `+14155550100`, `4155550100`, 1), `$.phone: "4155550100" does not match`},
		{"uuid", strings.Replace(good, `5d0b10a1-a09a`, `5d0b10a1a09a`, 1), `$.id: "5d0b10a1a09a-430f-81f1-20be735dc5e9" is not a uuid`},
		{"date-time", strings.Replace(good, `2025-01-02T03:04:05Z`, `2025-01-02`, 1), `$.when: "2025-01-02" is not a date-time`},
		{"uri", strings.Replace(good, `https://x.example/a`, `/a`, 1), `$.url: "/a" is not a uri`},
		{"array items", strings.Replace(good, `["a"]`, `["a",2]`, 1), `$.tags[1]: the number 2, want string`},
		{"object for array", strings.Replace(good, `["a"]`, `{}`, 1), `$.tags: an object, want array`},
		{"nested unknown field", strings.Replace(good, `"a":"x","b":2`, `"a":1`, 1), `$.open.a: the number 1, want string`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := decode([]byte(tt.doc))
			if err != nil {
				t.Fatal(err)
			}
			errs := s.validate(v, "$")
			switch {
			case tt.want == "" && len(errs) != 0:
				t.Errorf("unexpected problems: %q", errs)
			case tt.want != "" && (len(errs) != 1 || !strings.Contains(errs[0], tt.want)):
				t.Errorf("problems = %q, want one containing %q", errs, tt.want)
			}
		})
	}
}

// TestOverlay shows how the FINCH.md overlay refines a spec schema:
// mappings merge, required lists add up, scalars and enums replace, and
// x-replace replaces a whole node.
func TestOverlay(t *testing.T) {
	d := testDocs(t, `
thing:
  required: [status]
  properties:
    phone: {pattern: '^\+1'}
    added: {type: string}
    status: {enum: [connected, reauth, disconnected]}
    tags: {x-replace: true, type: array} # without the base's items: {type: string}
`)
	s, err := d.schemaFor("test#/components/schemas/Thing", "thing")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		doc  string
		want string
	}{
		{"base still applies", good, ""},
		{"added field", strings.Replace(good, `"ok":true`, `"ok":true,"added":"x"`, 1), ""},
		{"added required", strings.Replace(good, `"status":"reauth",`, ``, 1), `required field "status" is missing`},
		{"enum replaced", strings.Replace(good, `"reauth"`, `"disconnected"`, 1), ""},
		{"pattern replaced", strings.Replace(good, `+14155550100`, `+44`, 1), `does not match the pattern ^\+1`},
		{"nullable kept from the base", strings.Replace(good, `"name":null`, `"name":"n"`, 1), ""},
		{"x-replace drops the base's items", strings.Replace(good, `["a"]`, `["a",2]`, 1), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := decode([]byte(tt.doc))
			if err != nil {
				t.Fatal(err)
			}
			errs := s.validate(v, "$")
			switch {
			case tt.want == "" && len(errs) != 0:
				t.Errorf("unexpected problems: %q", errs)
			case tt.want != "" && (len(errs) != 1 || !strings.Contains(errs[0], tt.want)):
				t.Errorf("problems = %q, want one containing %q", errs, tt.want)
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name, overlay, key string
	}{
		{"unsupported keyword", `x: {oneOf: [{type: string}]}`, "x"},
		{"bad pattern", `x: {type: string, pattern: '('}`, "x"},
		{"dangling reference", `x: {$ref: 'test#/components/schemas/Nope'}`, "x"},
		{"unknown document", `x: {$ref: 'nope#/a'}`, "x"},
		{"cycle", `x: {$ref: '#/y'}
y: {$ref: '#/x'}`, "x"},
		{"no such overlay entry", `x: {}`, "y"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := testDocs(t, tt.overlay).schemaFor("", tt.key); err == nil || !strings.HasPrefix(err.Error(), "spectest: ") {
				t.Errorf("err = %v", err)
			}
		})
	}
}

// TestSpecExamples checks the validator against the specs themselves: the
// examples the specs give for the answers finchtest serves pass their own
// schemas, save one contradiction inside the spec.
func TestSpecExamples(t *testing.T) {
	d := loadSpecs(t)
	tests := []struct {
		doc, path, method, status string
		want                      map[string][]string // example name -> problems
	}{
		{"management", "/introspect", "get", "200", map[string][]string{
			// The spec's own example sends manual as the string 'false';
			// its schema says boolean (finchtest sends false).
			"Success": {`$.manual: the string "false", want boolean`},
		}},
		{"employer", "/employer/company", "get", "200", map[string][]string{"Success": nil}},
		{"employer", "/employer/directory", "get", "200", map[string][]string{"Success": nil}},
		{"management", "/sandbox/connections/accounts", "put", "200", map[string][]string{"success": nil}},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			s, err := d.schemaFor(ref(tt.doc, tt.path, tt.method, tt.status), "")
			if err != nil {
				t.Fatal(err)
			}
			node, _, err := d.resolve(tt.doc+"#/paths/"+escapePointer(tt.path)+"/"+tt.method+"/responses/"+tt.status+"/content/application~1json/examples", "")
			if err != nil {
				t.Fatal(err)
			}
			examples, _ := node.(map[string]any)
			if len(examples) != len(tt.want) {
				t.Fatalf("%d examples, want %d", len(examples), len(tt.want))
			}
			for name, want := range tt.want {
				ex, _ := examples[name].(map[string]any)
				b, err := json.Marshal(ex["value"])
				if err != nil {
					t.Fatal(err)
				}
				v, _ := decode(b)
				if got := s.validate(v, "$"); !slices.Equal(got, want) {
					t.Errorf("example %q: %q, want %q", name, got, want)
				}
			}
		})
	}
}
