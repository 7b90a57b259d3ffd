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
// The body is decoded as it arrives, item by item, never held whole.
func handleBatchCreate(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ins, parseErr, err := readBatch(r.Body)
		if err != nil {
			d.apiFailure(w, r, err)
			return
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
		ans := batchAnswer{Results: make([]batchResult, len(ins))}
		for i, err := range parseErr {
			if err != nil {
				ans.Results[i] = resultOf(i, 400, nil, err)
			}
		}
		for k, it := range items {
			ans.Results[idx[k]] = resultOf(idx[k], it.Status, it.Visit, it.Err)
			if it.Status >= 500 {
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
		case errors.Is(err, workflows.ErrInternal):
			res.Error = &errorBody{Code: "internal", Message: "internal error"}
		case errors.Is(err, workflows.ErrConflict):
			res.Error = &errorBody{Code: "conflict", Message: "a visit with this id exists with different details", Field: "id"}
		default:
			res.Error = &errorBody{Code: "unavailable", Message: "the service is temporarily unavailable"}
		}
	}
	return res
}

// readBatch decodes the items of a JSON array or of JSON lines as they
// arrive. It returns each item's input and, per item, the reason it is not
// a valid visit (nil when it is); err is for the body as a whole (not JSON,
// empty, too many items, too large).
func readBatch(body io.Reader) (ins []workflows.CreateInput, itemErr []error, err error) {
	br := bufio.NewReader(body)
	first, err := peekNonSpace(br)
	if err != nil {
		if tooLarge := jsonError(err, ""); errors.Is(tooLarge, errBodyTooLarge) {
			return nil, nil, tooLarge
		}
		return nil, nil, &workflows.InputError{Field: "body", Message: "is empty; want a JSON array or JSON lines"}
	}
	dec := json.NewDecoder(br)
	array := first == '['
	if array {
		_, _ = dec.Token() // the '[' peeked above
	}
	for {
		if array && !dec.More() {
			break
		}
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if !array && errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if tooLarge := jsonError(err, ""); errors.Is(tooLarge, errBodyTooLarge) {
				return nil, nil, tooLarge
			}
			what := "is not a valid JSON array"
			if !array {
				what = fmt.Sprintf("line item %d is not valid JSON", len(ins))
			}
			return nil, nil, &workflows.InputError{Field: "body", Message: what + ": " + err.Error()}
		}
		if len(ins) == workflows.BatchLimit {
			return nil, nil, &workflows.InputError{Field: "body", Message: fmt.Sprintf("has more than %d items", workflows.BatchLimit)}
		}
		var in workflows.CreateInput
		itemErr = append(itemErr, decodeItem(raw, &in))
		ins = append(ins, in)
	}
	if array {
		if _, err := dec.Token(); err != nil { // the closing ']'
			return nil, nil, &workflows.InputError{Field: "body", Message: "is not a valid JSON array: " + err.Error()}
		}
		if err := endOfBody(dec); err != nil {
			return nil, nil, err
		}
	}
	if len(ins) == 0 {
		return nil, nil, &workflows.InputError{Field: "body", Message: "holds no visits"}
	}
	return ins, itemErr, nil
}

// decodeItem decodes one batch item into in.
func decodeItem(raw json.RawMessage, in *workflows.CreateInput) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(in); err != nil {
		return &workflows.InputError{Field: "body", Message: "is not a valid visit: " + err.Error()}
	}
	return nil
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
