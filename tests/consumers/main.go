// Command consumers runs, on one object read as JSON from stdin, the code that the tools
// reading AirbyteJobWatch status run: kstatus as Flux vendors it, Flux's CEL health checks,
// and Argo Workflows' label-selector success/failure conditions. The tests compare our status
// against their verdicts instead of our reading of their documentation.
//
//	consumers kstatus                              < obj.json
//	consumers flux-cel CURRENT [FAILED [INPROGRESS]] < obj.json
//	consumers argo SUCCESS FAILURE                 < obj.json
//
// Each prints one JSON object: {"status": ..., "message": ...}.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"github.com/fluxcd/pkg/apis/kustomize"
	fluxcel "github.com/fluxcd/pkg/runtime/cel"
	"github.com/tidwall/gjson"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
)

func main() {
	if len(os.Args) < 2 {
		fail(fmt.Errorf("usage: consumers kstatus|flux-cel|argo ..."))
	}
	raw, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail(err)
	}
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(raw); err != nil {
		fail(err)
	}
	var out map[string]string
	switch os.Args[1] {
	case "kstatus":
		res, err := status.Compute(obj)
		if err != nil {
			fail(err)
		}
		out = map[string]string{"status": res.Status.String(), "message": res.Message}
	case "flux-cel":
		exprs := &kustomize.HealthCheckExpressions{Current: arg(2)}
		exprs.Failed, exprs.InProgress = arg(3), arg(4)
		evaluator, err := fluxcel.NewStatusEvaluator(exprs)
		if err != nil {
			fail(err)
		}
		res, err := evaluator.Evaluate(context.Background(), obj)
		if err != nil {
			// kustomize-controller turns an evaluation error into kstatus Unknown.
			out = map[string]string{"status": status.UnknownStatus.String(), "message": err.Error()}
		} else {
			out = map[string]string{"status": res.Status.String(), "message": res.Message}
		}
	case "argo":
		out = map[string]string{"status": argoVerdict(raw, arg(2), arg(3))}
	default:
		fail(fmt.Errorf("unknown consumer %q", os.Args[1]))
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fail(err)
	}
}

// gjsonLabels lets a label selector read any field of the object by its gjson path, which is
// how Argo Workflows evaluates a resource template's conditions.
type gjsonLabels struct{ json []byte }

func (g gjsonLabels) Has(key string) bool   { return gjson.GetBytes(g.json, key).Exists() }
func (g gjsonLabels) Get(key string) string { return gjson.GetBytes(g.json, key).String() }
func (g gjsonLabels) Lookup(key string) (string, bool) {
	r := gjson.GetBytes(g.json, key)
	return r.String(), r.Exists()
}

// argoVerdict: "failed" if any failure requirement matches (each is checked on its own, as
// Argo does), "succeeded" if the whole success selector matches, else "waiting".
func argoVerdict(raw []byte, success, failure string) string {
	fields := gjsonLabels{raw}
	if failure != "" {
		selector, err := labels.Parse(failure)
		if err != nil {
			fail(fmt.Errorf("failureCondition: %w", err))
		}
		requirements, _ := selector.Requirements()
		for _, req := range requirements {
			if req.Matches(fields) {
				return "failed"
			}
		}
	}
	if success != "" {
		selector, err := labels.Parse(success)
		if err != nil {
			fail(fmt.Errorf("successCondition: %w", err))
		}
		if selector.Matches(fields) {
			return "succeeded"
		}
	}
	return "waiting"
}

func arg(i int) string {
	if len(os.Args) > i {
		return os.Args[i]
	}
	return ""
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "consumers:", err)
	os.Exit(2)
}
