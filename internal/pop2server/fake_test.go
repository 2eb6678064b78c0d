package pop2server

import (
	"context"

	"github.com/postern/postern/internal/store"
)

type users map[string]store.User

func (u users) GetUser(_ context.Context, a string) (store.User, error) {
	if x, ok := u[a]; ok {
		return x, nil
	}
	return store.User{}, store.ErrNotFound
}
