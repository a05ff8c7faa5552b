// Command promql checks PromQL and alerting rules with Prometheus's own code.
//
//	promql        < exprs.json   a JSON array of expressions; prints, for each, the metric
//	                             names its selectors read or the parser's error, as a JSON
//	                             array of {"expr", "metrics", "error"}
//	promql rules  < rules.yaml   a Prometheus rules file, validated as `promtool check rules`
//	                             does (fields, durations, expressions, label and annotation
//	                             templates); prints {"rules": N, "errors": [...]}
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

type result struct {
	Expr    string   `json:"expr"`
	Metrics []string `json:"metrics"`
	Error   string   `json:"error,omitempty"`
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "rules" {
		checkRules()
		return
	}
	var exprs []string
	if err := json.NewDecoder(os.Stdin).Decode(&exprs); err != nil {
		fmt.Fprintln(os.Stderr, "promql: want a JSON array of expressions on stdin:", err)
		os.Exit(2)
	}
	results := make([]result, 0, len(exprs))
	for _, text := range exprs {
		results = append(results, parse(text))
	}
	if err := json.NewEncoder(os.Stdout).Encode(results); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func parse(text string) result {
	res := result{Expr: text, Metrics: []string{}}
	// The default options: the functions and syntax a stock Prometheus server accepts.
	expr, err := parser.NewParser(parser.Options{}).ParseExpr(text)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	seen := map[string]bool{}
	parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
		if vs, ok := node.(*parser.VectorSelector); ok {
			for _, m := range vs.LabelMatchers {
				if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
					seen[m.Value] = true
				}
			}
		}
		return nil
	})
	for name := range seen {
		res.Metrics = append(res.Metrics, name)
	}
	sort.Strings(res.Metrics)
	return res
}

func checkRules() {
	content, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	logger := slog.New(slog.DiscardHandler)
	groups, errs := rulefmt.Parse(content, false, model.UTF8Validation, parser.NewParser(parser.Options{}), logger)
	out := struct {
		Rules  int      `json:"rules"`
		Errors []string `json:"errors"`
	}{Errors: []string{}}
	for _, e := range errs {
		out.Errors = append(out.Errors, e.Error())
	}
	if groups != nil {
		for _, g := range groups.Groups {
			out.Rules += len(g.Rules)
		}
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
