package config

import (
	"encoding"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// The file is decoded by walking the yaml.Node tree alongside the Config
// struct instead of yaml.Unmarshal, so that every error can name the full key
// path and line, values are read exactly as written (from_number: +1555…
// stays a string rather than becoming a YAML integer), and the file and the
// environment share one parser per type.

var (
	durationType        = reflect.TypeFor[time.Duration]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// decodeNode overlays the YAML document n onto cfg.
func decodeNode(n *yaml.Node, cfg *Config, file string) error {
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return nil
		}
		n = n.Content[0]
	}
	if isNull(n) {
		return nil
	}
	return decodeValue(n, reflect.ValueOf(cfg).Elem(), "", file)
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func decodeValue(n *yaml.Node, v reflect.Value, path, file string) error {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("config: %s: %s (%s:%d)", path, fmt.Sprintf(format, args...), file, n.Line)
	}
	if isNull(n) {
		v.Set(reflect.Zero(v.Type()))
		return nil
	}
	switch {
	case isScalar(v.Type()):
		if n.Kind != yaml.ScalarNode {
			return fail("want a single value, got %s", kindName(n))
		}
		if err := setScalar(v, n.Value); err != nil {
			return fail("%v", err)
		}
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Struct && n.Kind == yaml.SequenceNode:
		// A list of objects (api.tokens): each item a mapping of its
		// fields, or the one-line form the environment uses.
		if len(n.Content) == 0 {
			v.Set(reflect.Zero(v.Type()))
			return nil
		}
		list := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			itemPath := fmt.Sprintf("%s[%d]", path, i)
			if item.Kind == yaml.MappingNode {
				if err := decodeFields(item, list.Index(i), itemPath, file); err != nil {
					return err
				}
				continue
			}
			if err := decodeValue(item, list.Index(i), itemPath, file); err != nil {
				return err
			}
		}
		v.Set(list)
	case v.Kind() == reflect.Slice:
		var items []string
		switch n.Kind {
		case yaml.SequenceNode:
			for _, item := range n.Content {
				if item.Kind == yaml.AliasNode {
					item = item.Alias
				}
				if item.Kind != yaml.ScalarNode {
					return fail("want a list of single values, got an item that is %s", kindName(item))
				}
				items = append(items, item.Value)
			}
		case yaml.ScalarNode: // "24h, 1h": the same syntax as the environment
			items = splitList(n.Value)
		default:
			return fail("want a list, got %s", kindName(n))
		}
		if err := setList(v, items); err != nil {
			return fail("%v", err)
		}
	case v.Kind() == reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return fail("want a mapping of keys, got %s", kindName(n))
		}
		return decodeFields(n, v, path, file)
	case v.Kind() == reflect.Map:
		if n.Kind != yaml.MappingNode {
			return fail("want a mapping of names, got %s", kindName(n))
		}
		if v.IsNil() {
			v.Set(reflect.MakeMap(v.Type()))
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			elem := reflect.New(v.Type().Elem()).Elem()
			if old := v.MapIndex(reflect.ValueOf(k.Value)); old.IsValid() {
				elem.Set(old)
			}
			if err := decodeValue(val, elem, join(path, k.Value), file); err != nil {
				return err
			}
			v.SetMapIndex(reflect.ValueOf(k.Value), elem)
		}
	default:
		return fail("unsupported field type %s", v.Type()) // a programming error in Config
	}
	return nil
}

// decodeFields overlays the mapping n onto the fields of struct v.
func decodeFields(n *yaml.Node, v reflect.Value, path, file string) error {
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		keyPath := join(path, k.Value)
		if seen[k.Value] {
			return fmt.Errorf("config: %s: set twice (%s:%d)", keyPath, file, k.Line)
		}
		seen[k.Value] = true
		f, ok := fieldByKey(v, k.Value)
		if !ok {
			return fmt.Errorf("config: %s: unknown key (%s:%d)", keyPath, file, k.Line)
		}
		if err := decodeValue(val, f, keyPath, file); err != nil {
			return err
		}
	}
	return nil
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return "a single value"
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// isScalar reports whether values of t are written as one YAML scalar.
func isScalar(t reflect.Type) bool {
	if reflect.PointerTo(t).Implements(textUnmarshalerType) {
		return true
	}
	switch t.Kind() {
	case reflect.String, reflect.Bool, reflect.Int, reflect.Int64:
		return true
	}
	return false
}

// fieldByKey finds the field of struct v whose yaml tag is key.
func fieldByKey(v reflect.Value, key string) (reflect.Value, bool) {
	for i := 0; i < v.NumField(); i++ {
		if yamlKey(v.Type().Field(i)) == key {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}

func yamlKey(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return name
}

// setScalar parses s into v according to v's type.
func setScalar(v reflect.Value, s string) error {
	if v.Type() == durationType {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("invalid duration %q (want Go syntax such as \"90s\" or \"24h\")", s)
		}
		v.SetInt(int64(d))
		return nil
	}
	if u, ok := v.Addr().Interface().(encoding.TextUnmarshaler); ok {
		return u.UnmarshalText([]byte(s))
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("invalid boolean %q (want true or false)", s)
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64:
		i, err := strconv.ParseInt(strings.TrimSpace(s), 10, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("invalid integer %q", s)
		}
		v.SetInt(i)
	default:
		return fmt.Errorf("unsupported field type %s", v.Type())
	}
	return nil
}

func setList(v reflect.Value, items []string) error {
	list := reflect.MakeSlice(v.Type(), len(items), len(items))
	for i, s := range items {
		if err := setScalar(list.Index(i), s); err != nil {
			return err
		}
	}
	v.Set(list)
	return nil
}

// splitList splits a comma-separated list; "" is the empty list.
func splitList(s string) []string {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	parts := strings.Split(s, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}

// envName returns the environment variable that overrides the key at path
// ("visits.followup_after" → "VISITFLOW_VISITS_FOLLOWUP_AFTER").
func envName(path string) string {
	return "VISITFLOW_" + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(path))
}

// twilioEnv are Twilio's own variable names; the VISITFLOW_ names win
// because applyEnv applies them afterwards.
var twilioEnv = []struct {
	name string
	set  func(*Config, string)
}{
	{"TWILIO_ACCOUNT_SID", func(c *Config, s string) { c.Twilio.AccountSID = s }},
	{"TWILIO_AUTH_TOKEN", func(c *Config, s string) { c.Twilio.AuthToken = s }},
	{"TWILIO_API_KEY", func(c *Config, s string) { c.Twilio.APIKey = s }},
	{"TWILIO_API_SECRET", func(c *Config, s string) { c.Twilio.APISecret = s }},
}

func applyEnv(cfg *Config, getenv func(string) string) error {
	for _, e := range twilioEnv {
		if s := getenv(e.name); s != "" {
			e.set(cfg, s)
		}
	}
	return walkLeaves(reflect.ValueOf(cfg).Elem(), "", func(v reflect.Value, path string) error {
		name := envName(path)
		s := getenv(name)
		if s == "" {
			return nil
		}
		var err error
		switch v.Kind() {
		case reflect.Slice:
			err = setList(v, splitList(s))
		case reflect.Map:
			err = setPairs(v, splitList(s))
		default:
			err = setScalar(v, s)
		}
		if err != nil {
			return fmt.Errorf("config: %s: %v (from %s)", path, err, name)
		}
		return nil
	})
}

// setPairs replaces the map v with the "name=value" items (the environment
// form of a map of single values, such as twilio.subaccount_tokens).
func setPairs(v reflect.Value, items []string) error {
	m := reflect.MakeMap(v.Type())
	for _, item := range items {
		name, value, ok := strings.Cut(item, "=")
		if !ok || strings.TrimSpace(name) == "" {
			return fmt.Errorf("want name=value pairs separated by commas, got %q", item)
		}
		elem := reflect.New(v.Type().Elem()).Elem()
		if err := setScalar(elem, strings.TrimSpace(value)); err != nil {
			return err
		}
		m.SetMapIndex(reflect.ValueOf(strings.TrimSpace(name)), elem)
	}
	v.Set(m)
	return nil
}

// isScalarMap reports whether t is a map of single values (a leaf: its
// environment variable sets the whole map as name=value pairs).
func isScalarMap(t reflect.Type) bool {
	return t.Kind() == reflect.Map && t.Key().Kind() == reflect.String && isScalar(t.Elem())
}

// walkLeaves calls fn for every settable leaf (scalar, list or map of single
// values) of v with its key path, in field order; entries of other maps are
// visited in name order and written back after fn ran, since map values are
// not addressable.
func walkLeaves(v reflect.Value, path string, fn func(v reflect.Value, path string) error) error {
	switch {
	case isScalar(v.Type()) || v.Kind() == reflect.Slice || isScalarMap(v.Type()):
		return fn(v, path)
	case v.Kind() == reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if err := walkLeaves(v.Field(i), join(path, yamlKey(v.Type().Field(i))), fn); err != nil {
				return err
			}
		}
	case v.Kind() == reflect.Map:
		keys := v.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
		for _, k := range keys {
			elem := reflect.New(v.Type().Elem()).Elem()
			elem.Set(v.MapIndex(k))
			if err := walkLeaves(elem, join(path, k.String()), fn); err != nil {
				return err
			}
			v.SetMapIndex(k, elem)
		}
	}
	return nil
}
