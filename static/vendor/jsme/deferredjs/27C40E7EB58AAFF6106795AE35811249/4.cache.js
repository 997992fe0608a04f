$wnd.jsme.runAsyncCallback4('x(704,593,on);_.Zd=function(){this.a.Mc&&G0(this.a.Mc);this.a.Mc=new L0(1,this.a)};U(dY)(4);\n//@ sourceURL=4.js\n')
