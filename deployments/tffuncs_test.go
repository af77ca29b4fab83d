package deployments

import (
	"strings"

	"github.com/hashicorp/hcl/v2/ext/tryfunc"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

// tfFunctions are the Terraform functions the variable validations use,
// with Terraform's semantics (can/try from HCL's tryfunc, as Terraform does).
func tfFunctions() map[string]function.Function {
	return map[string]function.Function{
		"can":        tryfunc.CanFunc,
		"try":        tryfunc.TryFunc,
		"regex":      stdlib.RegexFunc,
		"length":     stdlib.LengthFunc,
		"contains":   stdlib.ContainsFunc,
		"startswith": startsWithFunc,
		"alltrue":    allTrueFunc,
	}
}

var startsWithFunc = function.New(&function.Spec{
	Params: []function.Parameter{{Name: "s", Type: cty.String}, {Name: "prefix", Type: cty.String}},
	Type:   function.StaticReturnType(cty.Bool),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		return cty.BoolVal(strings.HasPrefix(args[0].AsString(), args[1].AsString())), nil
	},
})

var allTrueFunc = function.New(&function.Spec{
	Params: []function.Parameter{{Name: "list", Type: cty.List(cty.Bool)}},
	Type:   function.StaticReturnType(cty.Bool),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		for it := args[0].ElementIterator(); it.Next(); {
			if _, v := it.Element(); v.IsNull() || !v.True() {
				return cty.False, nil
			}
		}
		return cty.True, nil
	},
})
