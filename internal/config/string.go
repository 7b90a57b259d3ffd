package config

import (
	"bytes"
	"encoding"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/visitflow/visitflow/internal/redisurl"
)

// String returns the effective configuration as YAML, for the start-up log.
// Secrets (fields tagged secret:"true": twilio.auth_token,
// twilio.secondary_auth_token, the values of twilio.subaccount_tokens,
// twilio.api_secret, api.token, admin.password, visits.optout_secret) read "****", or "(empty)"
// when unset; the password inside redis.url is masked the same way.
func (c Config) String() string {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(toNode(reflect.ValueOf(c), "")); err != nil {
		return "config: " + err.Error() // cannot happen: the tree is built from strings
	}
	enc.Close()
	return buf.String()
}

func toNode(v reflect.Value, secret string) *yaml.Node {
	switch {
	case secret == "true" && v.Kind() == reflect.Map:
		// A map of secrets shows its names, each value masked.
	case secret == "true":
		if v.String() == "" {
			return str("(empty)")
		}
		return str("****")
	case secret == "url":
		return str(redisurl.Mask(v.String()))
	case v.Type() == durationType:
		return str(formatDuration(time.Duration(v.Int())))
	case v.Type().Implements(reflect.TypeFor[encoding.TextMarshaler]()):
		b, _ := v.Interface().(encoding.TextMarshaler).MarshalText()
		return str(string(b))
	}
	switch v.Kind() {
	case reflect.String:
		return str(v.String())
	case reflect.Bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(v.Bool())}
	case reflect.Int, reflect.Int64:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatInt(v.Int(), 10)}
	case reflect.Slice:
		n := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
		for i := 0; i < v.Len(); i++ {
			n.Content = append(n.Content, toNode(v.Index(i), ""))
		}
		return n
	case reflect.Struct:
		n := &yaml.Node{Kind: yaml.MappingNode}
		for i := 0; i < v.NumField(); i++ {
			f := v.Type().Field(i)
			n.Content = append(n.Content, str(yamlKey(f)), toNode(v.Field(i), f.Tag.Get("secret")))
		}
		return n
	case reflect.Map:
		n := &yaml.Node{Kind: yaml.MappingNode}
		keys := v.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
		for _, k := range keys {
			n.Content = append(n.Content, str(k.String()), toNode(v.MapIndex(k), secret))
		}
		if len(keys) == 0 {
			n.Style = yaml.FlowStyle
		}
		return n
	}
	return str(v.String())
}

func str(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
}

// formatDuration writes d the way people write it in config.yaml: "24h"
// rather than time.Duration's "24h0m0s".
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
