package ddlogs

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/testkit/churn"
)

// TestSetDefaultsAppliesToLaterDelivers: a reload's static tags and service
// apply from the next Deliver call on; each call renders its whole batch
// with one set of defaults, however many reloads happen meanwhile.
func TestSetDefaultsAppliesToLaterDelivers(t *testing.T) {
	in := newIntake(t, nil)
	c := promptClient(t, in, Defaults{Service: "petstore", Tags: "env:old"})

	_, err := c.Deliver(context.Background(), batch("before", 2))
	require.NoError(t, err)
	c.SetDefaults(Defaults{Service: "shop", Tags: "env:new,team:a"})
	_, err = c.Deliver(context.Background(), batch("after", 2))
	require.NoError(t, err)

	_, payloads, _ := in.snapshot()
	byID := map[string]map[string]any{}
	for _, p := range payloads {
		for _, l := range p {
			byID[l["id"].(string)] = l
		}
	}
	require.Len(t, byID, 4)
	for i := range 2 {
		old, cur := byID[fmt.Sprint("before-", i)], byID[fmt.Sprint("after-", i)]
		assert.Equal(t, "env:old,apiid:abc,stage:prod", old["ddtags"])
		assert.Equal(t, "petstore", old["service"])
		assert.Equal(t, "env:new,team:a,apiid:abc,stage:prod", cur["ddtags"])
		assert.Equal(t, "shop", cur["service"])
		assert.Equal(t, "apigateway", cur["ddsource"], "an empty source stays apigateway")
	}

	// Under concurrent reloads, every batch is rendered with one set.
	stop := churn.Start(func(i int) { c.SetDefaults(Defaults{Tags: fmt.Sprint("gen:", i)}) })
	var delivers sync.WaitGroup
	for b := range 20 {
		delivers.Go(func() {
			_, err := c.Deliver(context.Background(), batch(fmt.Sprint("race", b), 50))
			assert.NoError(t, err)
		})
	}
	delivers.Wait()
	stop()
	_, payloads, _ = in.snapshot()
	tagsOf := map[string]string{} // batch prefix → ddtags
	for _, p := range payloads {
		for _, l := range p {
			id := l["id"].(string)
			var prefix string
			var n int
			if _, err := fmt.Sscanf(id, "race%d-%d", &n, new(int)); err != nil {
				continue
			}
			prefix = fmt.Sprint(n)
			tags := l["ddtags"].(string)
			if prev, ok := tagsOf[prefix]; ok {
				assert.Equal(t, prev, tags, "batch race%s rendered with two sets of defaults", prefix)
			}
			tagsOf[prefix] = tags
		}
	}
	assert.Len(t, tagsOf, 20)
}
