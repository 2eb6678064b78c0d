package sqlite

import (
	"fmt"
	"testing"

	"github.com/postern/postern/internal/store/storetest"
)

func TestBayesConformance(t *testing.T) {
	for _, group := range []bool{true, false} {
		t.Run(fmt.Sprintf("group=%v", group), func(t *testing.T) { storetest.RunBayes(t, opener(group)) })
	}
}
