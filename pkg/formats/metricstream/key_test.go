package metricstream

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/gwpipe/gwpipe/pkg/record"
)

func TestKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		tags []string
		want StageKey
		ok   bool
	}{
		{"rest stage", []string{"apiname:petstore", "stage:prod", "region:us-east-1", "aws_account:123456789012"},
			StageKey{Account: "123456789012", Region: "us-east-1", APIName: "petstore", Stage: "prod"}, true},
		{"http stage", []string{"apiid:a1b2c3d4e5", "stage:_default", "region:eu-west-1", "aws_account:1", "method:get"},
			StageKey{Account: "1", Region: "eu-west-1", APIID: "a1b2c3d4e5", Stage: "_default"}, true},
		{"api level", []string{"apiname:petstore", "region:r", "aws_account:1"},
			StageKey{Account: "1", Region: "r", APIName: "petstore"}, true},
		{"first occurrence wins", []string{"apiid:a", "apiid:b", "region:r", "aws_account:1", "stage:s", "stage:t"},
			StageKey{Account: "1", Region: "r", APIID: "a", Stage: "s"}, true},
		{"no api", []string{"functionname:auth", "region:r", "aws_account:1"}, StageKey{Account: "1", Region: "r"}, false},
		{"no account", []string{"apiid:a", "region:r"}, StageKey{Region: "r", APIID: "a"}, false},
		{"empty values and bare tags", []string{"apiid:", "apiid", "region:r", "aws_account:1"}, StageKey{Account: "1", Region: "r"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Key(&record.Metric{Tags: tt.tags})
			assert.Equal(t, tt.want, got)
			assert.Equal(t, tt.ok, ok)
		})
	}

	// The keys of decoded points.
	got, err := decodeAll(t, DefaultConfig(), mustRead(t, goldenInput))
	assert.NoError(t, err)
	k, ok := Key(&got[0])
	assert.True(t, ok)
	assert.Equal(t, StageKey{Account: "1234567890", Region: "us-east-1", APIName: "petstore", Stage: "prod"}, k)
}
