$wnd.jsme.runAsyncCallback5('x(735,623,sn);_.be=function(){this.a.F&&(P2(this.a.F),this.a.F=null);0==this.a.r.w&&(this.a.F=new U2(2,this.a))};R(j_)(5);\n//@ sourceURL=5.js\n')
