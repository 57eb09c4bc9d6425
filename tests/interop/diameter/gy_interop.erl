%% A Gy client on Erlang/OTP's diameter application (an independent Diameter stack),
%% driven by tests/interop/diameter/test_erlang_interop.py.
%%
%% gy_interop:main([Host, Port, Msisdn, PoorMsisdn]) does: CER (diameter's own capabilities
%% exchange), CCR-INITIAL, CCR-UPDATE, the same CCR-UPDATE again (a
%% retransmission: same Session-Id and CC-Request-Number), a pause longer than
%% Tw so that diameter's watchdog sends DWR, CCR-TERMINATION, then DPR
%% (diameter:stop_service); a second, low-balance subscriber gets FUI REDIRECT,
%% 4012, a price enquiry and a balance check. Every answer is decoded by OTP with strict M-bit
%% checking; one line per step is printed for the Python side:
%%   STEP <name> <Result-Code> <decode-errors> <detail>
-module(gy_interop).

-include_lib("diameter/include/diameter.hrl").

-export([main/1]).
-export([peer_up/3, peer_down/3, pick_peer/4, prepare_request/3, prepare_retransmit/3,
         handle_answer/4, handle_error/4, handle_request/3]).

-define(SVC, gy_interop_client).

main([Host, PortText, Msisdn, PoorMsisdn]) ->
    Port = list_to_integer(PortText),
    register(gy_interop_main, self()),
    ok = diameter:start(),
    ok = diameter:start_service(?SVC, service()),
    {ok, _} = diameter:add_transport(?SVC, {connect, transport(Host, Port)}),
    receive {peer_up, _} -> step("cer", 2001, [], "open")
    after 10000 -> step("cer", 0, [timeout], "no peer_up"), halt(1)
    end,
    SId = diameter:session_id("erl-gy.example"),
    Mscc = fun(Used) ->
                   %% a non-empty RSU: Wireshark flags an empty grouped AVP ("Data is empty")
                   Base = #{'Rating-Group' => [10],
                            'Requested-Service-Unit' => [#{'CC-Total-Octets' => [10000]}]},
                   case Used of
                       none -> Base;
                       N -> Base#{'Used-Service-Unit' => [#{'CC-Total-Octets' => [N]}]}
                   end
           end,
    Ccr = fun(Type, Number, Extra) ->
                  maps:merge(#{'Session-Id' => SId,
                               'Destination-Realm' => "test.example",
                               'Auth-Application-Id' => 4,
                               'Service-Context-Id' => "32251@3gpp.org",
                               'CC-Request-Type' => Type,
                               'CC-Request-Number' => Number,
                               'Subscription-Id' => [#{'Subscription-Id-Type' => 0,
                                                       'Subscription-Id-Data' => Msisdn}],
                               'Multiple-Services-Indicator' => [1]},
                             Extra)
          end,
    call("ccr_initial", Ccr(1, 0, #{'Multiple-Services-Credit-Control' => [Mscc(none)]})),
    U1 = Ccr(2, 1, #{'Multiple-Services-Credit-Control' => [Mscc(4000)]}),
    call("ccr_update", U1),
    call("ccr_update_repeat", U1),
    timer:sleep(9000),  % > Tw (6 s +- 2 s): diameter's watchdog sends DWR, we answer DWA
    call("ccr_after_watchdog", Ccr(2, 2, #{'Multiple-Services-Credit-Control' => [Mscc(1000)]})),
    call("ccr_terminate",
         Ccr(3, 3, #{'Multiple-Services-Credit-Control' =>
                         [#{'Rating-Group' => [10],
                            'Used-Service-Unit' => [#{'CC-Total-Octets' => [500]}]}]})),
    %% stop_service sends DPR (REBOOTING) and waits for the DPA; the Python side
    %% checks the DPR/DPA pair on the wire.
    poor(PoorMsisdn),
    ok = diameter:stop_service(?SVC),
    step("dpr", 2001, [], "stopped"),
    halt(0).

%% A low balance: FUI REDIRECT on data, 4012 on voice, then a price enquiry and a
%% balance check, so that OTP's strict decoder reads those encodings too.
poor(Msisdn) ->
    SId = diameter:session_id("erl-gy.example"),
    Base = #{'Destination-Realm' => "test.example",
             'Auth-Application-Id' => 4,
             'Service-Context-Id' => "32251@3gpp.org",
             'Subscription-Id' => [#{'Subscription-Id-Type' => 0,
                                     'Subscription-Id-Data' => Msisdn}]},
    Rsu = [#{'CC-Total-Octets' => [10000]}],
    call("poor_initial",
         Base#{'Session-Id' => SId, 'CC-Request-Type' => 1, 'CC-Request-Number' => 0,
               'Multiple-Services-Indicator' => [1],
               'Multiple-Services-Credit-Control' =>
                   [#{'Rating-Group' => [10], 'Requested-Service-Unit' => Rsu},
                    #{'Rating-Group' => [30], 'Requested-Service-Unit' => [#{'CC-Time' => [60]}]}]}),
    call("price_enquiry",
         Base#{'Session-Id' => diameter:session_id("erl-gy.example"),
               'CC-Request-Type' => 4, 'CC-Request-Number' => 0,
               'Requested-Action' => [3], 'Requested-Service-Unit' => Rsu}),
    call("check_balance",
         Base#{'Session-Id' => diameter:session_id("erl-gy.example"),
               'CC-Request-Type' => 4, 'CC-Request-Number' => 0, 'Requested-Action' => [2]}).

service() ->
    [{'Origin-Host', "erl-gy.example"},
     {'Origin-Realm', "example"},
     {'Vendor-Id', 0},
     {'Product-Name', "otp-diameter-interop"},
     {'Origin-State-Id', erlang:system_time(second) band 16#7fffffff},
     {'Auth-Application-Id', [4]},
     {decode_format, map},
     {string_decode, false},
     {restrict_connections, false},
     {application, [{alias, cc},
                    {dictionary, rfc4006_cc},
                    {module, ?MODULE},
                    {answer_errors, callback}]}].

transport(Host, Port) ->
    {ok, Addr} = inet:parse_address(Host),
    [{transport_module, diameter_tcp},
     {transport_config, [{raddr, Addr}, {rport, Port}, {reuseaddr, true}]},
     {watchdog_timer, 6000},
     {connect_timer, 2000}].

call(Name, Avps) ->
    case diameter:call(?SVC, cc, ['CCR' | Avps], [{timeout, 5000}]) of
        {ok, Rc, Errors, Detail} -> step(Name, Rc, Errors, Detail);
        Other -> step(Name, 0, [Other], "call failed")
    end.

step(Name, Rc, Errors, Detail) ->
    io:format("STEP ~s ~p ~w ~s~n", [Name, Rc, Errors, Detail]).

%% diameter_app callbacks ------------------------------------------------------

peer_up(_Svc, Peer, State) ->
    gy_interop_main ! {peer_up, Peer},
    State.

peer_down(_Svc, Peer, State) ->
    catch gy_interop_main ! {peer_down, Peer},
    State.

pick_peer([Peer | _], _, _Svc, _State) ->
    {ok, Peer}.

prepare_request(#diameter_packet{msg = [Name | Avps]}, _, {_, Caps}) ->
    #diameter_caps{origin_host = {OH, _}, origin_realm = {OR, _}} = Caps,
    {send, [Name | Avps#{'Origin-Host' => OH, 'Origin-Realm' => OR}]}.

prepare_retransmit(Pkt, _Svc, _Peer) ->
    {send, Pkt}.

handle_answer(#diameter_packet{msg = [_ | Avps], errors = Errors}, _Req, _Svc, _Peer) ->
    Rc = maps:get('Result-Code', Avps, 0),
    {ok, Rc, Errors, detail(Avps)}.

handle_error(Reason, _Req, _Svc, _Peer) ->
    {error, Reason}.

handle_request(_Pkt, _Svc, _Peer) ->
    {answer_message, 3001}.

detail(Avps) ->
    Msccs = maps:get('Multiple-Services-Credit-Control', Avps, []),
    Parts = [io_lib:format("rg=~w,rc=~w,gsu=~w,fua=~w",
                           [maps:get('Rating-Group', M, []), maps:get('Result-Code', M, []),
                            [maps:get('CC-Total-Octets', G, []) || G <- maps:get('Granted-Service-Unit', M, [])],
                            [maps:get('Final-Unit-Action', F) || F <- maps:get('Final-Unit-Indication', M, [])]])
             || M <- Msccs],
    Top = io_lib:format("cost=~w,cbr=~w",
                        [[maps:get('Currency-Code', C) || C <- maps:get('Cost-Information', Avps, [])],
                         maps:get('Check-Balance-Result', Avps, [])]),
    lists:flatten(lists:join(";", [Top | Parts])).
