package handlers

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"go.uber.org/zap"

	"github.com/visitflow/visitflow/internal/visit"
	"github.com/visitflow/visitflow/workflows"
)

// batchResult is one item of POST /v1/visits/batch's answer.
type batchResult struct {
	Index  int        `json:"index"`
	Status int        `json:"status"`
	ID     string     `json:"id,omitempty"`
	Error  *errorBody `json:"error,omitempty"`
}

type errorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// batchAnswer is POST /v1/visits/batch's answer.
type batchAnswer struct {
	Created int           `json:"created"`
	Existed int           `json:"existing"`
	Failed  int           `json:"failed"`
	Results []batchResult `json:"results"`
}

// handleBatchCreate is POST /v1/visits/batch: a JSON array of visits or JSON
// lines (one visit per line), at most workflows.BatchLimit; valid items are
// created and every item gets its own result (200 overall). Items that are
// not valid JSON objects are reported by index like other invalid items.
func handleBatchCreate(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raws, err := splitBatch(r.Body)
		if err != nil {
			d.apiFailure(w, r, err)
			return
		}
		ins := make([]workflows.CreateInput, len(raws))
		parseErr := make([]error, len(raws))
		for i, raw := range raws {
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&ins[i]); err != nil {
				parseErr[i] = &workflows.InputError{Field: "body", Message: "is not a valid visit: " + err.Error()}
			}
		}
		// Create only the items that parsed, keeping their indexes.
		var idx []int
		var valid []workflows.CreateInput
		for i := range ins {
			if parseErr[i] == nil {
				idx = append(idx, i)
				valid = append(valid, ins[i])
			}
		}
		items := d.Engine.CreateVisits(r.Context(), valid)
		ans := batchAnswer{Results: make([]batchResult, len(raws))}
		for i, err := range parseErr {
			if err != nil {
				ans.Results[i] = resultOf(i, 400, nil, err)
			}
		}
		for k, it := range items {
			ans.Results[idx[k]] = resultOf(idx[k], it.Status, it.Visit, it.Err)
			if it.Status == http.StatusServiceUnavailable {
				d.Log.Error("batch item failed", zap.Int("index", idx[k]), zap.Error(it.Err))
			}
		}
		for _, res := range ans.Results {
			switch res.Status {
			case http.StatusCreated:
				ans.Created++
			case http.StatusOK:
				ans.Existed++
			default:
				ans.Failed++
			}
		}
		writeJSON(w, http.StatusOK, ans)
	})
}

func resultOf(i, status int, v *visit.Visit, err error) batchResult {
	res := batchResult{Index: i, Status: status}
	if v != nil {
		res.ID = v.ID
	}
	if err != nil {
		var in *workflows.InputError
		switch {
		case errors.As(err, &in):
			res.Error = &errorBody{Code: "invalid", Message: in.Message, Field: in.Field}
		case errors.Is(err, workflows.ErrConflict):
			res.Error = &errorBody{Code: "conflict", Message: "a visit with this id exists with different details", Field: "id"}
		default:
			res.Error = &errorBody{Code: "unavailable", Message: "the service is temporarily unavailable"}
		}
	}
	return res
}

// splitBatch returns the raw items of a JSON array or of JSON lines.
func splitBatch(body io.Reader) ([]json.RawMessage, error) {
	br := bufio.NewReader(body)
	first, err := peekNonSpace(br)
	if err != nil {
		return nil, &workflows.InputError{Field: "body", Message: "is empty; want a JSON array or JSON lines"}
	}
	var items []json.RawMessage
	tooMany := &workflows.InputError{Field: "body", Message: fmt.Sprintf("has more than %d items", workflows.BatchLimit)}
	if first == '[' {
		if err := json.NewDecoder(br).Decode(&items); err != nil {
			return nil, &workflows.InputError{Field: "body", Message: "is not a valid JSON array: " + err.Error()}
		}
	} else {
		dec := json.NewDecoder(br)
		for {
			var raw json.RawMessage
			err := dec.Decode(&raw)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, &workflows.InputError{Field: "body",
					Message: fmt.Sprintf("line item %d is not valid JSON: %v", len(items), err)}
			}
			items = append(items, raw)
			if len(items) > workflows.BatchLimit {
				return nil, tooMany
			}
		}
	}
	if len(items) > workflows.BatchLimit {
		return nil, tooMany
	}
	if len(items) == 0 {
		return nil, &workflows.InputError{Field: "body", Message: "holds no visits"}
	}
	return items, nil
}

func peekNonSpace(br *bufio.Reader) (byte, error) {
	for {
		b, err := br.ReadByte()
		if err != nil {
			return 0, err
		}
		switch b {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return b, br.UnreadByte()
	}
}
