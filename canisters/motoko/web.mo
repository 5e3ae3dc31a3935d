// A canister that serves web pages through the HTTP gateway. GET is
// answered by the `http_request` query; anything else asks the gateway to
// upgrade the request to the `http_request_update` update call, which
// changes state (the number of posts).
import Prim "mo:⛔";

persistent actor Web {
  type HeaderField = (Text, Text);
  type HttpRequest = {
    method : Text;
    url : Text;
    headers : [HeaderField];
    body : Blob;
    certificate_version : ?Nat16;
  };
  type HttpResponse = {
    status_code : Nat16;
    headers : [HeaderField];
    body : Blob;
    upgrade : ?Bool;
  };

  var posts : Nat = 0;

  func text(status : Nat16, body : Text) : HttpResponse {
    {
      status_code = status;
      headers = [("content-type", "text/plain; charset=utf-8")];
      body = Prim.encodeUtf8(body);
      upgrade = null;
    };
  };

  public query func http_request(request : HttpRequest) : async HttpResponse {
    if (request.method != "GET") {
      return { status_code = 200; headers = []; body = ""; upgrade = ?true };
    };
    if (request.url == "/missing") {
      return text(404, "no such page");
    };
    text(200, "hello from " # request.url # "; posts: " # debug_show posts);
  };

  public func http_request_update(request : HttpRequest) : async HttpResponse {
    posts += 1;
    let said = switch (Prim.decodeUtf8(request.body)) {
      case (?t) t;
      case null "";
    };
    text(201, "post " # debug_show posts # ": " # said);
  };
};
