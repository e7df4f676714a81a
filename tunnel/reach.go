package tunnel

import "strings"

// Routes is a set of routes, as an origin tells its edges which ones it
// cannot reach: one bit each for chat and media, whose names every edge and
// origin share, and one for all the other routes an operator may name. It
// fits one control message, so an edge of an older version skips it (see
// the control stream's format).
type Routes uint64

const (
	RouteChat Routes = 1 << iota
	RouteMedia
	RouteOther
)

// RouteOf returns the bit of the route named name.
func RouteOf(name string) Routes {
	switch name {
	case "chat":
		return RouteChat
	case "media":
		return RouteMedia
	}
	return RouteOther
}

// String names the routes of r: "chat, media", "another route", or "" for
// none.
func (r Routes) String() string {
	var names []string
	if r&RouteChat != 0 {
		names = append(names, "chat")
	}
	if r&RouteMedia != 0 {
		names = append(names, "media")
	}
	if r&RouteOther != 0 {
		names = append(names, "another route")
	}
	return strings.Join(names, ", ")
}
