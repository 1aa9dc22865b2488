package manage

import (
	"slices"

	"github.com/tokengate/caddy-tokengate/store"
)

// LocalOperator is the principal behind every call on Caddy's admin
// endpoint. The admin policy reserves the name: no other caller may act
// under it, since it holds every token the operator issued.
const LocalOperator = "local-operator"

// HolderOf is who holds t's secret, the principal separation of duties
// compares: its held_by. A token stored before holders were recorded has
// none; for it the best record of who received the secret stands in,
// never the owner someone typed: whoever created it (the requester who
// claimed it, the caller it was issued to, the one who rotated it), except
// a bootstrap token, which the local operator created for the person it
// names, its owner.
func HolderOf(t *store.Token) string {
	switch {
	case t.HeldBy != "":
		return t.HeldBy
	case t.CreatedBy == LocalOperator && slices.Contains(t.Services, ManagementService):
		return t.Owner
	case t.CreatedBy != "":
		return t.CreatedBy
	default:
		return t.Owner
	}
}
