%% Many Gy sessions from Erlang/OTP's diameter over two connections of one Origin-Host,
%% with End-to-End ids drawn at random (RFC 6733 §3 lets a client fill their low bits at
%% random), driven by tests/interop/diameter/test_erlang_interop.py (issue 13 item 1).
%%
%% gy_storm:main([Host, Port, Msisdn, Sessions, Workers, RandomBits]): two transports
%% to Host:Port (one service, one Origin-Host), then Workers processes share Sessions
%% sessions; each session is CCR-I (RSU 10000 octets), CCR-U (USU 1000), CCR-U (USU
%% 1000), CCR-T (USU 500), each sent on a connection picked at random with an
%% End-to-End id of 12 fixed bits and RandomBits random low bits. A small RandomBits
%% makes ids collide across sessions all the time. Every answer is checked against
%% its request: the same Session-Id, CC-Request-Type and CC-Request-Number. Prints
%%   COUNT requests=N answered=N mismatched=N not_2001=N failed=N peers=N
%% and one line per mismatch or failure (MISMATCH ... / FAILED ...).
-module(gy_storm).

-include_lib("diameter/include/diameter.hrl").

-export([main/1]).
-export([peer_up/4, peer_down/4, pick_peer/5, prepare_request/4, prepare_retransmit/4,
         handle_answer/5, handle_error/5, handle_request/4]).

-define(SVC, gy_storm_client).

main([Host, PortText, Msisdn, SessionsText, WorkersText, BitsText]) ->
    Port = list_to_integer(PortText),
    Sessions = list_to_integer(SessionsText),
    Workers = list_to_integer(WorkersText),
    Bits = list_to_integer(BitsText),
    register(gy_storm_main, self()),
    ok = diameter:start(),
    ok = diameter:start_service(?SVC, service(Bits)),
    {ok, _} = diameter:add_transport(?SVC, {connect, transport(Host, Port)}),
    {ok, _} = diameter:add_transport(?SVC, {connect, transport(Host, Port)}),
    Peers = wait_peers(2),
    Main = self(),
    Pids = [spawn_link(fun() -> worker(Main, Msisdn, lists:seq(W, Sessions, Workers)) end)
            || W <- lists:seq(1, Workers)],
    Totals = collect(length(Pids), #{requests => 0, answered => 0, mismatched => 0,
                                     not_2001 => 0, failed => 0}),
    io:format("COUNT requests=~p answered=~p mismatched=~p not_2001=~p failed=~p peers=~p~n",
              [maps:get(requests, Totals), maps:get(answered, Totals),
               maps:get(mismatched, Totals), maps:get(not_2001, Totals),
               maps:get(failed, Totals), Peers]),
    ok = diameter:stop_service(?SVC),
    halt(0).

wait_peers(N) -> wait_peers(N, 0).

wait_peers(N, N) -> N;
wait_peers(N, Up) ->
    receive {peer_up, _} -> wait_peers(N, Up + 1)
    after 10000 -> io:format("FAILED peers_up ~p~n", [Up]), halt(1)
    end.

collect(0, Totals) -> Totals;
collect(Left, Totals) ->
    receive
        {done, Counts} ->
            collect(Left - 1, maps:map(fun(K, V) -> V + maps:get(K, Counts) end, Totals))
    end.

worker(Main, Msisdn, Indices) ->
    Counts = lists:foldl(fun(_, Acc) -> session(Msisdn, Acc) end,
                         #{requests => 0, answered => 0, mismatched => 0,
                           not_2001 => 0, failed => 0},
                         Indices),
    Main ! {done, Counts}.

session(Msisdn, Acc0) ->
    SId = diameter:session_id("erl-storm.example"),
    Rsu = #{'CC-Total-Octets' => [10000]},
    Steps = [{1, 0, #{'Rating-Group' => [10], 'Requested-Service-Unit' => [Rsu]}},
             {2, 1, #{'Rating-Group' => [10], 'Requested-Service-Unit' => [Rsu],
                      'Used-Service-Unit' => [#{'CC-Total-Octets' => [1000]}]}},
             {2, 2, #{'Rating-Group' => [10], 'Requested-Service-Unit' => [Rsu],
                      'Used-Service-Unit' => [#{'CC-Total-Octets' => [1000]}]}},
             {3, 3, #{'Rating-Group' => [10],
                      'Used-Service-Unit' => [#{'CC-Total-Octets' => [500]}]}}],
    lists:foldl(
      fun({Type, Number, Mscc}, Acc) ->
              Ccr = #{'Session-Id' => SId,
                      'Destination-Realm' => "test.example",
                      'Auth-Application-Id' => 4,
                      'Service-Context-Id' => "32251@3gpp.org",
                      'CC-Request-Type' => Type,
                      'CC-Request-Number' => Number,
                      'Subscription-Id' => [#{'Subscription-Id-Type' => 0,
                                              'Subscription-Id-Data' => Msisdn}],
                      'Multiple-Services-Indicator' => [1],
                      'Multiple-Services-Credit-Control' => [Mscc]},
              count(diameter:call(?SVC, cc, ['CCR' | Ccr], [{timeout, 10000}]),
                    {to_bin(SId), Type, Number}, bump(requests, Acc))
      end, Acc0, Steps).

count({ok, Rc, Echo}, Sent, Acc) ->
    Acc1 = bump(answered, Acc),
    Acc2 = case Echo of
               Sent -> Acc1;
               _ -> io:format("MISMATCH sent=~p got=~p~n", [Sent, Echo]),
                    bump(mismatched, Acc1)
           end,
    case Rc of
        2001 -> Acc2;
        _ -> io:format("NOT_2001 ~p ~p~n", [Rc, Sent]), bump(not_2001, Acc2)
    end;
count(Other, Sent, Acc) ->
    io:format("FAILED ~p ~p~n", [Sent, Other]),
    bump(failed, Acc).

bump(Key, Acc) -> maps:update_with(Key, fun(V) -> V + 1 end, Acc).

service(Bits) ->
    [{'Origin-Host', "erl-storm.example"},
     {'Origin-Realm', "example"},
     {'Vendor-Id', 0},
     {'Product-Name', "otp-diameter-storm"},
     {'Origin-State-Id', erlang:system_time(second) band 16#7fffffff},
     {'Auth-Application-Id', [4]},
     {decode_format, map},
     {string_decode, false},
     {restrict_connections, false},
     {application, [{alias, cc},
                    {dictionary, rfc4006_cc},
                    {module, [?MODULE, Bits]},
                    {answer_errors, callback}]}].

transport(Host, Port) ->
    {ok, Addr} = inet:parse_address(Host),
    [{transport_module, diameter_tcp},
     {transport_config, [{raddr, Addr}, {rport, Port}, {reuseaddr, true}]},
     {watchdog_timer, 30000},
     {connect_timer, 2000}].

%% diameter_app callbacks (extra argument: RandomBits) -------------------------

peer_up(_Svc, Peer, State, _Bits) ->
    gy_storm_main ! {peer_up, Peer},
    State.

peer_down(_Svc, _Peer, State, _Bits) ->
    State.

pick_peer(Peers, _, _Svc, _State, _Bits) ->
    {ok, lists:nth(rand:uniform(length(Peers)), Peers)}.

%% The End-to-End id: 12 fixed high bits (as a client's time bits would be) and
%% Bits random low bits, set in the header diameter keeps for the request.
prepare_request(#diameter_packet{msg = [Name | Avps]}, _, {_, Caps}, Bits) ->
    #diameter_caps{origin_host = {OH, _}, origin_realm = {OR, _}} = Caps,
    E2E = (16#ABC bsl 20) bor (rand:uniform(1 bsl Bits) - 1),
    {send, #diameter_packet{header = #diameter_header{end_to_end_id = E2E},
                            msg = [Name | Avps#{'Origin-Host' => OH, 'Origin-Realm' => OR}]}}.

prepare_retransmit(Pkt, _Svc, _Peer, _Bits) ->
    {send, Pkt}.

handle_answer(#diameter_packet{msg = [_ | Avps]}, _Req, _Svc, _Peer, _Bits) ->
    Rc = maps:get('Result-Code', Avps, 0),
    Echo = {maps:get('Session-Id', Avps, undefined),
            maps:get('CC-Request-Type', Avps, undefined),
            maps:get('CC-Request-Number', Avps, undefined)},
    {ok, Rc, normalise(Echo)}.

handle_error(Reason, _Req, _Svc, _Peer, _Bits) ->
    {error, Reason}.

handle_request(_Pkt, _Svc, _Peer, _Bits) ->
    {answer_message, 3001}.

%% With string_decode false the answer's Session-Id is a binary; the request's is what
%% diameter:session_id/1 returned (a string): both are compared as binaries.
normalise({SId, Type, Number}) ->
    {to_bin(SId), Type, Number}.

to_bin(B) when is_binary(B) -> B;
to_bin(L) when is_list(L) -> iolist_to_binary(L);
to_bin(Other) -> Other.
