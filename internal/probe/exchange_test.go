package probe

import "testing"

func TestParse(t *testing.T) {
	raw := "HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 2\r\n\r\nhi" +
		"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n" + "junk"
	a := Parse([]byte(raw), false)
	if len(a.Responses) != 2 || string(a.Rest) != "junk" {
		t.Fatalf("%+v", a)
	}
	r0, r1 := a.Responses[0], a.Responses[1]
	if r0.StatusLine != "HTTP/1.1 200 OK" || string(r0.Body) != "hi" || r0.Close || len(r0.Names) != 2 || r0.Names[0] != "Server" {
		t.Errorf("first: %+v", r0)
	}
	if r1.StatusLine != "HTTP/1.1 404 Not Found" || !r1.Close {
		t.Errorf("second: %+v", r1)
	}
	if a := Parse([]byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"), true); len(a.Responses) != 1 || len(a.Responses[0].Body) != 0 {
		t.Errorf("HEAD: %+v", a)
	}
	if a := Parse([]byte("<html>bare</html>"), false); len(a.Responses) != 0 || string(a.Rest) != "<html>bare</html>" {
		t.Errorf("HTTP/0.9: %+v", a)
	}
}
